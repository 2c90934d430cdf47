// Copy buttons: `<button data-copy="ID">` copies the text of the element with that id. The
// text stays selectable for those who copy by hand.
"use strict";

for (const button of document.querySelectorAll("button[data-copy]")) {
  const status = button.parentElement.querySelector(".copy-status");
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(source.value || source.textContent);
      if (status) status.textContent = "Copied.";
    } catch (error) {
      source.select();
      if (status) status.textContent = "Select the text and copy it with your keyboard.";
    }
  });
}
