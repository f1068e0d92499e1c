// glazeish web page: the comparison viewers (A/B, flicker, split, 100 % with pan). No libraries, no requests.
// Every viewer is plain HTML rendered by glazeish.ui.render_viewer; this script only reacts to clicks on it
// (delegated from the document, so viewers that Gradio re-renders keep working).
(() => {
  if (window.glzViewers) return;
  window.glzViewers = true;
  const FLICKER_MS = 700;
  const timers = new WeakMap();

  const natural = (v) => Number(v.dataset.width) || 1;

  function scaleNow(v) {
    const layers = v.querySelector(".glz-layers");
    return layers ? layers.getBoundingClientRect().width / natural(v) : 1;
  }

  function caption(v) {
    const cap = v.querySelector(".glz-caption");
    if (!cap) return;
    const mode = v.dataset.mode;
    const show = mode === "flicker" || mode === "split" ? v.dataset.show : mode;
    const names = { a: v.dataset.labelA, b: v.dataset.labelB, c: v.dataset.labelC };
    let what;
    if (mode === "split") what = `left: ${names.a}, right: ${names.b}`;
    else if (mode === "flicker") what = `flicker, now: ${names[show]}`;
    else what = names[show];
    const pct = Math.round(scaleNow(v) * 100);
    let zoom = `${pct} %; click the picture for the whole of it`;
    if (v.dataset.zoom === "fit") {
      zoom = pct < 100 ? `${pct} %, the whole picture; click it for 100 %` : `${pct} %, the whole picture`;
    }
    cap.textContent = `${what} · ${zoom}`;
  }

  function press(v, attr, value) {
    v.querySelectorAll(`[data-${attr}]`).forEach((b) => {
      if (b.tagName === "BUTTON") b.setAttribute("aria-pressed", String(b.dataset[attr] === value));
    });
  }

  function setMode(v, mode) {
    clearInterval(timers.get(v));
    timers.delete(v);
    v.dataset.mode = mode;
    press(v, "mode", mode);
    if (mode === "flicker") {
      v.dataset.show = "b";
      timers.set(v, setInterval(() => {
        if (!v.isConnected || v.dataset.mode !== "flicker") {
          clearInterval(timers.get(v));
          return;
        }
        v.dataset.show = v.dataset.show === "a" ? "b" : "a";
        caption(v);
      }, FLICKER_MS));
    } else {
      v.dataset.show = mode === "split" ? "split" : mode;
    }
    caption(v);
  }

  // zoom "fit" (the whole image, never enlarged) or a factor (1 = 100 %: one image pixel per CSS pixel);
  // (fx, fy) = the point of the image, as fractions, to keep in the middle of the stage
  function setZoom(v, zoom, fx = 0.5, fy = 0.5) {
    const layers = v.querySelector(".glz-layers");
    const stage = v.querySelector(".glz-stage");
    v.dataset.zoom = zoom;
    press(v, "zoom", zoom);
    if (zoom === "fit") {
      layers.style.width = "";
      layers.style.maxWidth = "";
    } else {
      layers.style.width = `${natural(v) * Number(zoom)}px`;
      layers.style.maxWidth = "none";
      const r = layers.getBoundingClientRect();
      stage.scrollLeft = fx * r.width - stage.clientWidth / 2;
      stage.scrollTop = fy * r.height - stage.clientHeight / 2;
    }
    caption(v);
  }

  function setSplit(v, pct) {
    v.style.setProperty("--glz-split", `${pct}%`);
  }

  document.addEventListener("click", (e) => {
    const btn = e.target.closest(".glz-viewer button");
    if (!btn) return;
    const v = btn.closest(".glz-viewer");
    if (btn.dataset.mode) setMode(v, btn.dataset.mode);
    if (btn.dataset.zoom) setZoom(v, btn.dataset.zoom);
  });

  document.addEventListener("input", (e) => {
    if (!e.target.matches(".glz-viewer input.glz-split")) return;
    const v = e.target.closest(".glz-viewer");
    setSplit(v, e.target.value);
    if (v.dataset.mode !== "split") setMode(v, "split");
  });

  // click (or tap) on the picture: fit -> 100 % around that point -> fit; drag with a mouse to pan
  // (touch screens pan natively, the stage scrolls)
  let drag = null;
  document.addEventListener("pointerdown", (e) => {
    const stage = e.target.closest(".glz-viewer .glz-stage");
    if (!stage || e.button !== 0) return;
    drag = { stage, x: e.clientX, y: e.clientY, left: stage.scrollLeft, top: stage.scrollTop, moved: false,
             mouse: e.pointerType === "mouse" };
  });
  document.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
    if (drag.mouse && drag.moved) {
      drag.stage.scrollLeft = drag.left - dx;
      drag.stage.scrollTop = drag.top - dy;
      e.preventDefault();
    }
  });
  document.addEventListener("pointerup", (e) => {
    const d = drag;
    drag = null;
    if (!d || d.moved) return;
    const v = d.stage.closest(".glz-viewer");
    const r = v.querySelector(".glz-layers").getBoundingClientRect();
    const fx = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    const fy = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
    setZoom(v, v.dataset.zoom === "fit" ? "1" : "fit", fx, fy);
  });
  document.addEventListener("pointercancel", () => { drag = null; });
  document.addEventListener("dragstart", (e) => {
    if (e.target.closest(".glz-viewer .glz-stage")) e.preventDefault();
  });

  // captions once the pictures have loaded (their size decides the scale shown)
  document.addEventListener("load", (e) => {
    const v = e.target.closest && e.target.closest(".glz-viewer");
    if (v) caption(v);
  }, true);
  window.addEventListener("resize", () => document.querySelectorAll(".glz-viewer").forEach(caption));
})();

// A click (or Enter/Space) anywhere on a preset card chooses that preset, and a size offer under an upload
// chooses that size: both by clicking the matching option of the page's own radio group, so the settings stay
// Gradio's. Delegated from the document: the cards and offers are re-rendered by the server.
(() => {
  if (window.glzChoosers) return;
  window.glzChoosers = true;

  function choose(groupId, value) {
    const inputs = [...document.querySelectorAll(`#${groupId} input[type=radio]`)];
    const input = inputs.find((i) => i.value === value);
    if (input && !input.checked) input.click();
  }

  function act(e) {
    if (e.target.closest("details, summary, a")) return;  // the numbers open without choosing
    const card = e.target.closest(".glz-preset[data-preset]");
    if (card) choose("glz-intensity", card.dataset.preset);
    const offer = e.target.closest("[data-glz-size]");
    if (offer) choose("glz-size", offer.dataset.glzSize);
  }

  document.addEventListener("click", act);
  document.addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === " ") && e.target.matches(".glz-preset[data-preset]")) {
      e.preventDefault();
      act(e);
    }
  });
})();
