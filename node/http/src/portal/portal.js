// The portal's only script: adds "copy" buttons. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", () => {
      navigator.clipboard.writeText(source.textContent).then(
        () => { button.textContent = "copied"; },
        () => { button.textContent = "select and copy"; }
      );
    });
  }
});
