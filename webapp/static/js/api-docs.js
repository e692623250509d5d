// Start Swagger UI on /api/docs with the document named by the page (no inline script: see the CSP).
(function () {
  "use strict";

  function start() {
    var root = document.getElementById("swagger-ui");
    window.ui = window.SwaggerUIBundle({
      url: root.dataset.specUrl,
      domNode: root,
      deepLinking: true,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      // No badge fetched from validator.swagger.io: this page talks to this site only.
      validatorUrl: null,
      defaultModelsExpandDepth: 0,
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
