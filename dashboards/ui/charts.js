// Drover's charts: small hand-written SVG (no library, no network). Two kinds:
//   DroverCharts.line(el, series, opts)        time series, one line per series
//   DroverCharts.histogram(el, hist, opts)     stacked bars per level, drag to zoom
'use strict';
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#1f6feb', '#cf222e', '#1a7f37', '#bf8700', '#8250df', '#0969da', '#bc4c00', '#57606a', '#e85aad', '#116329'];
  const LEVEL_COLORS = { fatal: '#82071e', error: '#cf222e', warn: '#bf8700', info: '#1f6feb', debug: '#8250df', trace: '#6e7781', none: '#afb8c1' };
  const LEVEL_ORDER = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'none'];

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  // A "nice" upper bound and tick step for 0..max.
  function niceScale(max, ticks) {
    if (!(max > 0)) return { max: 1, step: 0.25 };
    const raw = max / ticks;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw);
    return { max: Math.ceil(max / step) * step, step };
  }

  function fmtValue(v, unit) {
    if (v == null || !isFinite(v)) return '–';
    if (unit === 'bytes' || unit === 'bytes/s') {
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
      return v.toFixed(v >= 100 || i === 0 ? 0 : 1) + ' ' + units[i] + (unit === 'bytes/s' ? '/s' : '');
    }
    const s = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
    return unit === '%' ? s + ' %' : unit ? s + ' ' + unit : s;
  }

  function fmtTime(ms, spanMs) {
    const d = new Date(ms);
    const p = n => String(n).padStart(2, '0');
    if (spanMs > 2 * 86400e3) return (d.getMonth() + 1) + '/' + d.getDate() + ' ' + p(d.getHours()) + 'h';
    if (spanMs > 3 * 60e3) return p(d.getHours()) + ':' + p(d.getMinutes());
    return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }

  let tip;
  function tooltip(text, x, y) {
    if (!tip) { tip = document.createElement('div'); tip.className = 'tooltip'; document.body.appendChild(tip); }
    if (text == null) { tip.hidden = true; return; }
    tip.hidden = false;
    tip.textContent = text;
    tip.style.left = Math.min(x + 12, window.innerWidth - tip.offsetWidth - 8) + 'px';
    tip.style.top = (y + 12) + 'px';
  }

  // series: [{name, points: [[ms, value], ...]}]; opts: {unit, from, to, height}
  function line(el, series, opts) {
    opts = opts || {};
    el.textContent = '';
    const W = Math.max(el.clientWidth || 400, 200), H = opts.height || 190;
    const m = { l: 56, r: 10, t: 8, b: 22 };
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' }, el);
    const all = series.flatMap(s => s.points);
    if (!all.length) {
      svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, root).textContent = 'no data in this range yet';
      root.dataset.points = '0';
      return root;
    }
    root.dataset.points = String(all.length);
    const t0 = opts.from || Math.min(...all.map(p => p[0]));
    const t1 = opts.to || Math.max(...all.map(p => p[0]));
    const span = Math.max(t1 - t0, 1);
    // Byte scales start at 4 B so a flat zero line gets distinct tick labels.
    const floor = String(opts.unit || '').startsWith('bytes') ? 4 : 0;
    const { max, step } = niceScale(Math.max(floor, ...all.map(p => p[1])), 4);
    const x = t => m.l + (t - t0) / span * (W - m.l - m.r);
    const y = v => H - m.b - v / max * (H - m.t - m.b);
    for (let v = 0; v <= max + 1e-9; v += step) {
      svg('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), stroke: v === 0 ? '#8c959f' : '#eaeef2', class: v === 0 ? 'axis' : 'grid' }, root);
      svg('text', { x: m.l - 4, y: y(v) + 4, 'text-anchor': 'end' }, root).textContent = fmtValue(v, opts.unit);
    }
    const ticks = Math.max(2, Math.floor((W - m.l) / 90));
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + span * i / ticks;
      svg('text', { x: x(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle' }, root).textContent = fmtTime(t, span);
    }
    series.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      s.color = color;
      const pts = s.points.filter(p => p[1] != null && isFinite(p[1]));
      if (!pts.length) return;
      if (pts.length === 1) {
        svg('circle', { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 3, fill: color }, root);
      } else {
        const d = pts.map((p, j) => (j ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
        svg('path', { d, fill: 'none', stroke: color, 'stroke-width': 1.6, class: 'series' }, root);
      }
    });
    const cursor = svg('line', { y1: m.t, y2: H - m.b, stroke: '#8c959f', 'stroke-dasharray': '3 3', visibility: 'hidden' }, root);
    root.addEventListener('mousemove', ev => {
      const r = root.getBoundingClientRect();
      const t = t0 + ((ev.clientX - r.left) * W / r.width - m.l) / (W - m.l - m.r) * span;
      cursor.setAttribute('x1', x(t)); cursor.setAttribute('x2', x(t));
      cursor.setAttribute('visibility', 'visible');
      const lines = [new Date(t).toLocaleTimeString()];
      for (const s of series) {
        let best = null;
        for (const p of s.points) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
        if (best) lines.push(s.name + ': ' + fmtValue(best[1], opts.unit));
      }
      tooltip(lines.join('\n'), ev.clientX, ev.clientY);
    });
    root.addEventListener('mouseleave', () => { cursor.setAttribute('visibility', 'hidden'); tooltip(null); });
    const legend = document.createElement('div');
    legend.className = 'legend';
    for (const s of series) {
      const item = document.createElement('span');
      const sw = document.createElement('i');
      sw.style.background = s.color;
      item.append(sw, s.name || '(all)');
      legend.appendChild(item);
    }
    el.appendChild(legend);
    return root;
  }

  // hist: the /api/logs/histogram answer; opts.onZoom(fromMs, toMs) after a drag or a click
  function histogram(el, hist, opts) {
    opts = opts || {};
    el.textContent = '';
    const W = Math.max(el.clientWidth || 600, 200), H = 120;
    const m = { l: 44, r: 6, t: 6, b: 20 };
    const root = svg('svg', { class: 'histogram', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' }, el);
    const buckets = hist.buckets || [];
    root.dataset.buckets = String(buckets.length);
    const t0 = Date.parse(hist.from), t1 = Date.parse(hist.to);
    const span = Math.max(t1 - t0, 1);
    const { max, step } = niceScale(Math.max(0, ...buckets.map(b => b.total)), 3);
    const x = t => m.l + (t - t0) / span * (W - m.l - m.r);
    const y = v => H - m.b - v / max * (H - m.t - m.b);
    for (let v = 0; v <= max + 1e-9; v += step) {
      svg('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), stroke: v === 0 ? '#8c959f' : '#eaeef2', class: v === 0 ? 'axis' : 'grid' }, root);
      svg('text', { x: m.l - 4, y: y(v) + 4, 'text-anchor': 'end' }, root).textContent = v >= 1000 ? (v / 1000) + 'k' : String(v);
    }
    const ticks = Math.max(2, Math.floor((W - m.l) / 110));
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + span * i / ticks;
      svg('text', { x: x(t), y: H - 5, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle' }, root).textContent = fmtTime(t, span);
    }
    const bw = Math.max(1, (W - m.l - m.r) * hist.interval_ms / span - 1);
    for (const b of buckets) {
      let acc = 0;
      const levels = Object.keys(b.levels || {}).sort((a, c) => LEVEL_ORDER.indexOf(c) - LEVEL_ORDER.indexOf(a));
      for (const lv of levels) {
        const n = b.levels[lv];
        if (!n) continue;
        const r = svg('rect', { x: x(b.ts_ms), y: y(acc + n), width: bw, height: Math.max(0.5, y(acc) - y(acc + n)), fill: LEVEL_COLORS[lv] || '#57606a', class: 'hist-bar level-' + lv, 'data-ts': b.ts_ms, 'data-level': lv, 'data-count': n }, root);
        svg('title', {}, r).textContent = `${new Date(b.ts_ms).toLocaleString()}\n${lv}: ${n}`;
        acc += n;
      }
    }
    // Drag to zoom (a click zooms to one bucket).
    const sel = svg('rect', { class: 'sel', y: m.t, height: H - m.t - m.b, width: 0, visibility: 'hidden' }, root);
    const toT = ev => {
      const r = root.getBoundingClientRect();
      const px = Math.min(Math.max((ev.clientX - r.left) * W / r.width, m.l), W - m.r);
      return t0 + (px - m.l) / (W - m.l - m.r) * span;
    };
    let start = null;
    root.addEventListener('mousedown', ev => { start = toT(ev); ev.preventDefault(); });
    root.addEventListener('mousemove', ev => {
      if (start == null) return;
      const t = toT(ev);
      sel.setAttribute('x', x(Math.min(start, t)));
      sel.setAttribute('width', Math.abs(x(t) - x(start)));
      sel.setAttribute('visibility', 'visible');
    });
    window.addEventListener('mouseup', function up(ev) {
      if (start == null) return;
      const t = toT(ev);
      let a = Math.min(start, t), b = Math.max(start, t);
      start = null;
      sel.setAttribute('visibility', 'hidden');
      if (x(b) - x(a) < 4) { // a click: the bucket under it
        a = t0 + Math.floor((a - t0) / hist.interval_ms) * hist.interval_ms;
        b = a + hist.interval_ms;
      }
      if (!root.isConnected) { window.removeEventListener('mouseup', up); return; }
      if (opts.onZoom) opts.onZoom(Math.floor(a), Math.ceil(b));
    });
    const legend = document.createElement('div');
    legend.className = 'legend';
    const seen = new Set(buckets.flatMap(b => Object.keys(b.levels || {})));
    for (const lv of LEVEL_ORDER.filter(l => seen.has(l))) {
      const item = document.createElement('span');
      const sw = document.createElement('i');
      sw.style.background = LEVEL_COLORS[lv];
      item.append(sw, lv);
      legend.appendChild(item);
    }
    el.appendChild(legend);
    return root;
  }

  window.DroverCharts = { line, histogram, fmtValue };
})();
