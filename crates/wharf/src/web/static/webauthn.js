// WebAuthn for wharf's forms: security keys and passkeys. A form marked `data-webauthn`
// ("register", "authenticate" or "passkey") asks the server for options (`data-options`),
// runs the browser's ceremony, and posts the answer to the form's action. The server answers
// with JSON: {"location": ...} to go on, or {"error": ...} to show in the form's status line.
"use strict";

(function () {
  function toBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function toText(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(publicKey) {
    const options = Object.assign({}, publicKey);
    options.challenge = toBytes(publicKey.challenge);
    options.user = Object.assign({}, publicKey.user, { id: toBytes(publicKey.user.id) });
    options.excludeCredentials = (publicKey.excludeCredentials || []).map((c) =>
      Object.assign({}, c, { id: toBytes(c.id) }));
    return options;
  }

  function requestOptions(publicKey) {
    const options = Object.assign({}, publicKey);
    options.challenge = toBytes(publicKey.challenge);
    options.allowCredentials = (publicKey.allowCredentials || []).map((c) =>
      Object.assign({}, c, { id: toBytes(c.id) }));
    return options;
  }

  function registration(credential) {
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(credential.response.clientDataJSON),
        attestationObject: toText(credential.response.attestationObject),
        transports: credential.response.getTransports ? credential.response.getTransports() : [],
      },
    };
  }

  function assertion(credential) {
    const response = credential.response;
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        authenticatorData: toText(response.authenticatorData),
        signature: toText(response.signature),
        userHandle: response.userHandle ? toText(response.userHandle) : null,
      },
    };
  }

  async function post(url, fields) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields),
    });
    let body = {};
    try {
      body = await response.json();
    } catch (e) {
      body = { error: "The server could not be reached. Try again." };
    }
    if (!response.ok && !body.error) body.error = "That did not work. Try again.";
    return body;
  }

  async function run(form, status) {
    const mode = form.dataset.webauthn;
    const csrf = form.querySelector("input[name=csrf_token]").value;
    const fields = { csrf_token: csrf };
    const label = form.querySelector("input[name=label]");
    if (label) fields.label = label.value;
    if (form.dataset.kind) fields.kind = form.dataset.kind;
    status.textContent = "Waiting for the server…";
    const start = await post(form.dataset.options, fields);
    if (start.error) throw new Error(start.error);
    const publicKey = start.options.publicKey;
    status.textContent = "Follow your browser's prompt to use your key…";
    let answer;
    if (mode === "register") {
      answer = registration(await navigator.credentials.create({ publicKey: creationOptions(publicKey) }));
    } else {
      answer = assertion(await navigator.credentials.get({ publicKey: requestOptions(publicKey) }));
    }
    const finish = await post(form.action, Object.assign({}, fields, {
      ceremony: start.ceremony,
      credential: JSON.stringify(answer),
    }));
    if (finish.error) throw new Error(finish.error);
    status.textContent = "Done.";
    window.location.assign(finish.location);
  }

  for (const form of document.querySelectorAll("form[data-webauthn]")) {
    const status = form.querySelector(".webauthn-status");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!window.PublicKeyCredential) {
        status.textContent = "This browser does not support security keys or passkeys.";
        return;
      }
      run(form, status).catch((error) => {
        status.textContent = error.name === "NotAllowedError"
          ? "The request was cancelled or timed out. Try again."
          : error.message;
      });
    });
  }
})();
