// The voucher check's camera scan (counter → Voucher): the device camera's frames are
// read with jsQR (vendor/jsqr.js, a pinned npm package); the first QR code found goes into
// the code field and the form is submitted, as if the cashier had typed it. A QR holding
// a link is read for its `code` parameter. Without a camera (or permission) the button
// says so and typing still works. Loaded only by counter_voucher.html.
"use strict";
(function () {
  var button = document.querySelector("[data-scan]");
  if (!button || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
  var box = button.closest("[data-scan-for]");
  var field = document.getElementById(box.getAttribute("data-scan-for"));
  var form = field.form;
  var video = box.querySelector("[data-scan-video]");
  var status = box.querySelector("[data-scan-status]");
  var canvas = document.createElement("canvas");
  var context = canvas.getContext("2d", { willReadFrequently: true });
  var stream = null;
  button.hidden = false;

  function say(key) { status.textContent = status.getAttribute("data-" + key); }

  function codeOf(text) {
    var value = text.trim();
    try {
      var url = new URL(value);
      value = url.searchParams.get("code") || url.pathname.split("/").pop() || value;
    } catch (notALink) { /* the code itself */ }
    return value.slice(0, 64);
  }

  function stop(key) {
    if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
    stream = null;
    video.hidden = true;
    say(key);
  }

  function look() {
    if (!stream) return;
    if (video.readyState >= 2 && video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0);
      var frame = context.getImageData(0, 0, canvas.width, canvas.height);
      var found = window.jsQR(frame.data, frame.width, frame.height, { inversionAttempts: "dontInvert" });
      if (found && found.data) {
        field.value = codeOf(found.data);
        stop("stopped");
        form.submit();
        return;
      }
    }
    window.requestAnimationFrame(look);
  }

  button.addEventListener("click", function () {
    if (stream) { stop("stopped"); return; }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (opened) {
        stream = opened;
        video.srcObject = opened;
        video.hidden = false;
        say("looking");
        return video.play();
      })
      .then(function () { window.requestAnimationFrame(look); })
      .catch(function () { stop("refused"); });
  });
})();
