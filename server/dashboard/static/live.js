// Live updates: ask the dashboard every few seconds whether its data changed (/api/stamp);
// when it did, fetch this page again and swap its content in place (no full reload).
(function () {
  const every = 3000;
  let stamp = document.body.dataset.stamp;
  async function poll() {
    try {
      const answer = await fetch("/api/stamp", { cache: "no-store" });
      if (answer.ok) {
        const now = (await answer.json()).stamp;
        if (now !== stamp) {
          const page = await fetch(window.location.href, { cache: "no-store" });
          if (page.ok) {
            const doc = new DOMParser().parseFromString(await page.text(), "text/html");
            document.getElementById("content").replaceWith(doc.getElementById("content"));
            stamp = doc.body.dataset.stamp || now;
            document.body.dataset.stamp = stamp;
            const live = document.getElementById("live");
            live.textContent = "实时 live · 已更新 updated " + new Date().toLocaleTimeString();
            live.classList.add("updated");
          }
        }
      }
    } catch (e) { /* the dashboard restarted or the network blinked: try again next time */ }
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
})();
