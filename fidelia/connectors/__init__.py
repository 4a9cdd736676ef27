"""ERP connectors: doors whose outbound half (the ERP's API) runs in the worker."""
