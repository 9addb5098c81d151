// Drover's web UI: logs, apps, nodes, events. Plain JavaScript, no build step, no network
// beyond this server's own APIs. The view lives in the URL hash (#/logs?q=...&since=15m), so
// every view can be shared and restored.
'use strict';
(function () {
  const view = document.getElementById('view');
  const errorBanner = document.getElementById('error');
  const charts = window.DroverCharts;
  let config = { logs: true, metrics: true, scheduler: true, version: '' };
  let cleanup = []; // what the current page must stop (timers, event sources) when it is left

  // ---------------------------------------------------------------- helpers
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k === 'html') e.innerHTML = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  function showError(msg) {
    if (!msg) { errorBanner.hidden = true; errorBanner.textContent = ''; return; }
    errorBanner.hidden = false;
    errorBanner.textContent = msg;
  }

  // The CSRF header a write made with the session cookie must carry (the drover_csrf cookie
  // the login set, echoed: a page of another site cannot read it).
  function csrf(method) {
    if (!method || /^(GET|HEAD)$/i.test(method)) return {};
    const m = document.cookie.match(/(?:^|;\s*)drover_csrf=([^;]*)/);
    return m ? { 'x-csrf-token': decodeURIComponent(m[1]) } : {};
  }

  // Authentication is on and this browser has no (valid) session: to the login form.
  function toLogin(resp) {
    if (resp.status === 401) { location.href = '/login'; return true; }
    return false;
  }

  // JSON from one of Drover's APIs; throws an Error with the API's own message.
  async function api(path, opts) {
    let resp;
    const o = Object.assign({}, opts || {});
    o.headers = Object.assign({ 'content-type': 'application/json' }, csrf(o.method), o.headers || {});
    try {
      resp = await fetch(path, o);
    } catch (e) {
      throw new Error(`cannot reach the Drover server (${e.message}); is drover up still running?`);
    }
    if (toLogin(resp)) throw new Error('not logged in: to the login page');
    const text = await resp.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      const msg = body && (body.error || body.message) ? (body.error || body.message) : text || resp.statusText;
      const detail = body && (body.details || body.detail) ? ' ' + JSON.stringify(body.details || body.detail) : '';
      throw new Error(`${msg}${detail} (HTTP ${resp.status} from ${path.split('?')[0]})`);
    }
    return body;
  }

  function qs(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== '') p.set(k, v);
    return p.toString();
  }

  function route() {
    const hash = location.hash.replace(/^#/, '') || '/logs';
    const [path, query] = hash.split('?');
    const parts = path.split('/').filter(Boolean);
    return { page: parts[0] || 'logs', rest: parts.slice(1).map(decodeURIComponent), params: new URLSearchParams(query || '') };
  }

  function go(hash, replace) {
    if (replace) { history.replaceState(null, '', hash); render(); } else location.hash = hash;
  }

  function pad(n, w) { return String(n).padStart(w || 2, '0'); }
  function fmtTs(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso || '';
    const frac = (iso.match(/\.(\d{3})/) || [0, '000'])[1];
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${frac}`;
  }
  function ago(iso) {
    if (!iso) return '–';
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return Math.round(s) + 's';
    if (s < 5400) return Math.round(s / 60) + 'm';
    if (s < 172800) return (s / 3600).toFixed(1) + 'h';
    return Math.round(s / 86400) + 'd';
  }
  function appHref(id) { return '#/app' + id.split('/').map(encodeURIComponent).join('/'); }
  function every(ms, fn) { const t = setInterval(fn, ms); cleanup.push(() => clearInterval(t)); }

  // A modal dialog; resolves to the form's values, or null when cancelled.
  function dialog(title, body, okText, danger) {
    const d = document.getElementById('dialog');
    document.getElementById('dialog-title').textContent = title;
    const b = document.getElementById('dialog-body');
    b.textContent = '';
    b.append(body);
    const ok = document.getElementById('dialog-ok');
    ok.textContent = okText || 'OK';
    ok.className = danger ? 'primary danger' : 'primary';
    d.returnValue = '';
    d.showModal();
    const first = b.querySelector('input');
    if (first) { first.focus(); first.select(); }
    return new Promise(resolve => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok' ? b : null), { once: true });
    });
  }

  // ---------------------------------------------------------------- logs
  const RANGES = [['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['6h', 'Last 6 hours'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['custom', 'Custom range…']];
  const FILTER_KEYS = ['app', 'host', 'level', 'stream', 'container'];
  const HISTORY_KEY = 'drover.queryHistory';
  const TOP_FIELDS = ['app', 'host', 'level', 'stream', 'container', 'node', 'group'];

  function logsState(params) {
    const s = { q: params.get('q') || '', since: params.get('since') || '', from: params.get('from') || '', to: params.get('to') || '' };
    if (!s.since && !s.from) s.since = '15m';
    for (const k of FILTER_KEYS) s[k] = params.get(k) || '';
    return s;
  }
  function logsHash(s) {
    const p = { q: s.q };
    if (s.from) { p.from = s.from; p.to = s.to; } else p.since = s.since;
    for (const k of FILTER_KEYS) p[k] = s[k];
    return '#/logs?' + qs(p);
  }
  function apiParams(s) {
    const p = { q: s.q };
    if (s.from) { p.from = s.from; if (s.to) p.to = s.to; } else p.since = s.since;
    for (const k of FILTER_KEYS) p[k] = s[k];
    return p;
  }
  function history_() { try { return JSON.parse(localStorage.getItem(HISTORY_KEY)) || []; } catch (_) { return []; } }
  function remember(q) {
    if (!q.trim()) return;
    const list = [q, ...history_().filter(x => x !== q)].slice(0, 25);
    try { localStorage.setItem(HISTORY_KEY, JSON.stringify(list)); } catch (_) { /* private mode */ }
  }
  // Words of the query worth highlighting in the lines (no field names, operators or quotes).
  function queryTerms(q) {
    const out = [];
    for (const m of q.matchAll(/(-?)(?:[\w.@]+:)?("([^"]*)"|[^\s()]+)/g)) {
      if (m[1]) continue;
      const t = (m[3] != null ? m[3] : m[2]).replace(/\*$/, '');
      if (!t || /^(AND|OR|NOT|TO)$/.test(t) || t.length < 2) continue;
      out.push(t.toLowerCase());
    }
    return out;
  }
  function highlight(el, text, terms) {
    if (!terms.length) { el.textContent = text; return; }
    const lower = text.toLowerCase();
    let i = 0;
    while (i < text.length) {
      let best = -1, len = 0;
      for (const t of terms) {
        const j = lower.indexOf(t, i);
        if (j >= 0 && (best < 0 || j < best)) { best = j; len = t.length; }
      }
      if (best < 0) { el.append(text.slice(i)); break; }
      el.append(text.slice(i, best), h('mark', {}, text.slice(best, best + len)));
      i = best + len;
    }
  }
  function quoteValue(v) {
    const s = String(v);
    return /^-?\d+(\.\d+)?$/.test(s) || /^(true|false)$/.test(s) ? s : '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  }

  function renderLogs(r) {
    const s = logsState(r.params);
    const input = h('input', { type: 'search', id: 'q', value: s.q, list: 'qhist', placeholder: 'Search logs: error AND status:502, "exact phrase", -healthz, user.id:7, time*', autocomplete: 'off', spellcheck: 'false' });
    const datalist = h('datalist', { id: 'qhist' }, history_().map(q => h('option', { value: q })));
    const range = h('select', { id: 'range', title: 'Time range' }, RANGES.map(([v, label]) => h('option', { value: v, selected: (s.from ? 'custom' : s.since) === v }, label)));
    if (!s.from && !RANGES.some(([v]) => v === s.since)) range.prepend(h('option', { value: s.since, selected: true }, 'Last ' + s.since));
    const toLocalInput = v => { const d = new Date(/^\d+$/.test(v) ? Number(v) : v); return isNaN(d) ? '' : new Date(d - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 19); };
    const fromIn = h('input', { type: 'datetime-local', id: 'from', step: 1, value: s.from ? toLocalInput(s.from) : '' });
    const toIn = h('input', { type: 'datetime-local', id: 'to', step: 1, value: s.to ? toLocalInput(s.to) : '' });
    const custom = h('span', { class: 'row', id: 'custom-range', hidden: !s.from }, 'from', fromIn, 'to', toIn);
    range.addEventListener('change', () => { custom.hidden = range.value !== 'custom'; if (range.value !== 'custom') submit(); });
    const help = h('div', { class: 'help panel', id: 'help', hidden: true, html:
      '<b>Query syntax</b> (words are ANDed): <code>timeout</code> · <code>"connection refused"</code> (phrase) · ' +
      '<code>error OR warn</code> · <code>-healthz</code> / <code>NOT healthz</code> (exclude) · <code>time*</code> (prefix) · ' +
      '<code>level:error</code> · <code>app:"/shop/web"</code> · <code>status:502</code>, <code>user.id:7</code> (any parsed JSON/logfmt/access-log field) · ' +
      '<code>(a OR b) AND c</code>. Time: pick a range, or drag across the histogram to zoom. Click a line for its fields: ' +
      '<b>+</b> filters in, <b>−</b> filters out.' });
    const live = h('button', { id: 'live', type: 'button', title: 'Follow new lines as they arrive' }, '▶ Live');
    const form = h('form', { class: 'row', id: 'search-form' }, input, datalist, range, custom,
      h('button', { class: 'primary', type: 'submit', id: 'search' }, 'Search'),
      h('button', { type: 'button', title: 'Query syntax', onclick: () => { help.hidden = !help.hidden; } }, '?'), live);
    const chips = h('div', { class: 'chips', id: 'filters' });
    for (const k of FILTER_KEYS) if (s[k]) chips.append(h('span', { class: 'chip' }, `${k}: ${s[k]}`, h('button', { type: 'button', title: 'Remove filter', onclick: () => { s[k] = ''; go(logsHash(s)); } }, '×')));
    const histEl = h('div', { id: 'histogram' });
    const summary = h('div', { class: 'summary muted', id: 'summary' }, 'Searching…');
    const results = h('div', { class: 'logs', id: 'results' });
    const sentinel = h('div', { class: 'sentinel muted', id: 'more' });
    const tailBox = h('div', { class: 'logs', id: 'tail', hidden: true });
    view.replaceChildren(h('div', { class: 'panel' }, form, chips, help),
      h('div', { class: 'panel' }, histEl, summary, results, sentinel, tailBox));

    function submit(ev) {
      if (ev) ev.preventDefault();
      const next = Object.assign({}, s, { q: input.value.trim() });
      if (range.value === 'custom') {
        if (!fromIn.value) { showError('Pick the start of the custom range (or choose a preset).'); return; }
        next.from = new Date(fromIn.value).toISOString();
        next.to = toIn.value ? new Date(toIn.value).toISOString() : '';
        next.since = '';
      } else { next.since = range.value; next.from = next.to = ''; }
      remember(next.q);
      if (logsHash(next) === location.hash) render(); // the same view again: search again
      else go(logsHash(next));
    }
    form.addEventListener('submit', submit);

    const terms = queryTerms(s.q);
    const params = apiParams(s);
    let cursor = null, loading = false, shown = 0, started = performance.now();

    function row(hit, opts) {
      const el = h('div', { class: 'log-row' + (opts && opts.here ? ' here' : ''), dataset: { seq: hit.seq, container: hit.container } },
        h('span', { class: 'ts', title: hit.ts }, fmtTs(hit.ts)),
        h('span', {}, hit.level ? h('span', { class: 'badge ' + hit.level }, hit.level) : ''),
        h('span', { class: 'app', title: `${hit.app} · ${hit.container_name} · ${hit.host}` }, hit.app),
        h('span', { class: 'msg' }));
      highlight(el.lastChild, hit.line, terms);
      el.addEventListener('click', () => toggleDetails(el, hit));
      return el;
    }

    // Parsed fields the index leaves out (search/src/index.rs NOT_INDEXED_KEYS, IGNORE_ABOVE).
    const NOT_INDEXED_KEYS = ['msg', 'message', 'ts', 'time', 'timestamp', '@timestamp'];
    const IGNORE_ABOVE = 256;

    function toggleDetails(el, hit) {
      const next = el.nextSibling;
      if (next && next.classList && next.classList.contains('details')) { next.remove(); el.classList.remove('open'); return; }
      el.classList.add('open');
      const rows = [];
      const add = (k, v, filterKey, indexed = true) => {
        if (v == null || v === '') return;
        const fk = filterKey || k;
        if (!indexed) {
          // Shown but not indexed as a field (see search/README.md): search its words as text.
          rows.push(h('tr', { dataset: { field: k } }, h('td', { class: 'k' }, k), h('td', { class: 'v' }, String(v)),
            h('td', { class: 'muted', title: 'Not indexed as a field: search its words as text' }, 'text')));
          return;
        }
        const tr = h('tr', { dataset: { field: k } }, h('td', { class: 'k' }, k), h('td', { class: 'v' }, String(v)),
          h('td', { style: 'white-space:nowrap' },
            h('button', { class: 'small filter-in', type: 'button', title: `Only lines with ${k} = ${v}`, onclick: () => filter(fk, v, true) }, '+'),
            h('button', { class: 'small filter-out', type: 'button', title: `Hide lines with ${k} = ${v}`, onclick: () => filter(fk, v, false) }, '−'),
            TOP_FIELDS.includes(k) || k.startsWith('fields.')
              ? h('button', { class: 'small top-btn', type: 'button', title: `The most frequent values of ${k} in these results`, onclick: () => topValues(tr, k, fk) }, 'top 5') : null));
        rows.push(tr);
      };
      add('ts', hit.ts); add('app', hit.app); add('level', hit.level); add('host', hit.host); add('node', hit.node);
      add('task', hit.task); add('group', hit.group); add('container_name', hit.container_name); add('container', hit.container);
      add('image', hit.image); add('stream', hit.stream); add('seq', hit.seq);
      const flat = (obj, prefix) => {
        for (const [k, v] of Object.entries(obj || {})) {
          if (v && typeof v === 'object' && !Array.isArray(v)) flat(v, prefix + k + '.');
          else add('fields.' + prefix + k, Array.isArray(v) ? JSON.stringify(v) : v, prefix + k,
            !(prefix === '' && NOT_INDEXED_KEYS.includes(k)) && !(typeof v === 'string' && v.length > IGNORE_ABOVE));
        }
      };
      flat(hit.fields, '');
      const ctxBox = h('div', { class: 'context', hidden: true });
      const box = h('div', { class: 'details' }, h('table', {}, rows),
        h('div', { class: 'row', style: 'margin-top:6px' },
          h('button', { type: 'button', class: 'small show-context', onclick: () => showContext(hit, ctxBox) }, 'Show context'),
          h('a', { href: logsHash({ q: '', since: '', from: new Date(Date.parse(hit.ts) - 60e3).toISOString(), to: new Date(Date.parse(hit.ts) + 60e3).toISOString(), app: '', host: '', level: '', stream: '', container: hit.container }) }, 'this container ±1 min')),
        ctxBox);
      el.after(box);
    }

    // The most frequent values of a field among the matching lines (Kibana's field summary).
    async function topValues(tr, key, filterKey) {
      const next = tr.nextSibling;
      if (next && next.classList && next.classList.contains('top-values')) { next.remove(); return; }
      const cell = h('td', { colspan: 3 }, 'Counting…');
      tr.after(h('tr', { class: 'top-values' }, cell));
      try {
        const res = await api('/api/logs/fields?' + qs(Object.assign({}, params, { field: key, size: 5 })));
        cell.textContent = '';
        if (!res.values.length) cell.append(h('span', { class: 'muted' }, 'No values.'));
        for (const v of res.values) {
          const pct = res.total ? (v.count / res.total * 100).toFixed(1) : '0';
          cell.append(h('div', { class: 'row top-value' },
            h('div', { class: 'meter', style: 'min-width:80px;width:80px' }, h('span', { style: `width:${pct}%` })),
            h('span', {}, v.value), h('span', { class: 'muted' }, `${v.count.toLocaleString()} (${pct} %)`),
            h('button', { class: 'small', type: 'button', onclick: () => filter(filterKey, v.value, true) }, '+'),
            h('button', { class: 'small', type: 'button', onclick: () => filter(filterKey, v.value, false) }, '−')));
        }
      } catch (e) { cell.textContent = e.message; }
    }

    function filter(key, value, include) {
      const next = Object.assign({}, s);
      if (include && FILTER_KEYS.includes(key)) next[key] = String(value);
      else {
        const clause = (include ? '' : '-') + key + ':' + quoteValue(value);
        next.q = (s.q ? s.q + ' ' : '') + clause;
      }
      go(logsHash(next));
    }

    async function showContext(hit, box) {
      box.hidden = false;
      box.textContent = 'Loading context…';
      try {
        const ctx = await api('/api/logs/context?' + qs({ container: hit.container, seq: hit.seq, before: 15, after: 15 }));
        box.textContent = '';
        if (!ctx.lines.length) box.append(h('div', { class: 'empty' }, 'No lines around this one.'));
        for (const l of ctx.lines) box.append(row(l, { here: l.seq === hit.seq }));
      } catch (e) { box.textContent = e.message; }
    }

    async function more() {
      if (loading || cursor === undefined) return;
      loading = true;
      sentinel.textContent = 'Loading…';
      try {
        const page = await api('/api/logs/search?' + qs(Object.assign({}, params, { limit: 100, snippets: false, cursor })));
        const frag = document.createDocumentFragment();
        for (const hit of page.hits) frag.append(row(hit));
        results.append(frag);
        shown += page.hits.length;
        cursor = page.next_cursor || undefined;
        summary.textContent = `${page.total.toLocaleString()}${page.total_relation === 'gte' ? '+' : ''} lines · showing ${shown.toLocaleString()} · newest first · ${page.took_ms.toFixed(0)} ms`;
        sentinel.textContent = cursor ? '' : shown ? 'End of results.' : '';
        if (!shown) results.append(h('div', { class: 'empty' }, 'No lines match. Widen the time range or loosen the query.'));
        if (!document.body.dataset.logsReadyMs) document.body.dataset.logsReadyMs = String(Math.round(performance.now()));
        results.dataset.state = 'ready';
        showError(null);
      } catch (e) {
        showError(e.message);
        summary.textContent = 'Search failed.';
        sentinel.textContent = '';
        results.dataset.state = 'error';
        cursor = undefined;
      } finally { loading = false; }
      // Keep filling while the sentinel is still on screen.
      if (cursor && sentinel.getBoundingClientRect().top < window.innerHeight + 200) more();
    }

    async function drawHistogram() {
      try {
        const src = '/api/logs/histogram?' + qs(Object.assign({}, params, { buckets: Math.max(20, Math.min(120, Math.floor((histEl.clientWidth || 800) / 10))) }));
        const hist = await api(src);
        histEl.dataset.src = src;
        charts.histogram(histEl, hist, {
          onZoom: (a, b) => go(logsHash(Object.assign({}, s, { since: '', from: new Date(a).toISOString(), to: new Date(b).toISOString() }))),
        });
        histEl.dataset.state = 'ready';
      } catch (e) { histEl.textContent = ''; histEl.dataset.state = 'error'; }
    }

    const obs = new IntersectionObserver(entries => { if (entries.some(e => e.isIntersecting)) more(); }, { rootMargin: '300px' });
    obs.observe(sentinel);
    cleanup.push(() => obs.disconnect());
    drawHistogram();
    more();

    // Live tail: new lines at the top; pause keeps them aside.
    let source = null, paused = false, pending = [];
    const pauseBtn = h('button', { type: 'button', id: 'pause', hidden: true }, '❚❚ Pause');
    live.after(pauseBtn);
    function flush() {
      for (const hit of pending.splice(0)) tailBox.prepend(row(hit));
      while (tailBox.childElementCount > 1000) tailBox.lastChild.remove();
      pauseBtn.textContent = paused ? '▶ Resume' : '❚❚ Pause';
    }
    function stopLive() {
      if (source) source.close();
      source = null; paused = false; pending = [];
      live.classList.remove('on'); live.textContent = '▶ Live';
      pauseBtn.hidden = true; tailBox.hidden = true;
      results.hidden = false; sentinel.hidden = false;
    }
    live.addEventListener('click', () => {
      if (source) { stopLive(); return; }
      const p = apiParams(s); delete p.since; delete p.from; delete p.to;
      source = new EventSource('/api/logs/tail?' + qs(p));
      live.classList.add('on'); live.textContent = '■ Stop';
      pauseBtn.hidden = false; tailBox.hidden = false; tailBox.textContent = '';
      results.hidden = true; sentinel.hidden = true;
      summary.textContent = 'Live: new lines appear at the top.';
      source.addEventListener('log', ev => {
        pending.push(JSON.parse(ev.data));
        if (!paused) flush(); else pauseBtn.textContent = `▶ Resume (${pending.length} new)`;
      });
      source.onerror = () => { summary.textContent = 'Live tail: reconnecting…'; };
      source.onopen = () => { summary.textContent = 'Live: new lines appear at the top.'; };
    });
    pauseBtn.addEventListener('click', () => { paused = !paused; flush(); });
    cleanup.push(stopLive);
  }

  // ---------------------------------------------------------------- apps
  async function renderApps() {
    const body = h('tbody');
    const table = h('table', { id: 'apps' }, h('thead', {}, h('tr', {},
      h('th', {}, 'App'), h('th', {}, 'Image / command'), h('th', { class: 'num' }, 'Running'), h('th', { class: 'num' }, 'Healthy'),
      h('th', { class: 'num' }, 'Staged'), h('th', { class: 'num' }, 'CPUs'), h('th', { class: 'num' }, 'Mem MiB'), h('th', {}, 'Deployment'))), body);
    view.replaceChildren(h('h2', {}, 'Apps'), h('div', { class: 'panel' }, table));
    async function load() {
      try {
        const [apps, deps] = await Promise.all([api('/v2/apps'), api('/v2/deployments')]);
        const deploying = new Map();
        for (const d of deps || []) for (const a of d.affectedApps || []) deploying.set(a, d);
        const groups = new Map();
        for (const a of apps.apps) {
          const g = a.id.split('/').slice(0, -1).join('/') || '/';
          if (!groups.has(g)) groups.set(g, []);
          groups.get(g).push(a);
        }
        body.textContent = '';
        if (!apps.apps.length) body.append(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No apps yet: drover app deploy FILE, or drover up --demo.')));
        for (const [g, list] of [...groups].sort()) {
          const running = list.reduce((n, a) => n + a.tasksRunning, 0), wanted = list.reduce((n, a) => n + a.instances, 0);
          body.append(h('tr', { class: 'group' }, h('td', { colspan: 8 }, `group ${g} · ${list.length} app(s) · ${running}/${wanted} instances`)));
          for (const a of list.sort((x, y) => x.id.localeCompare(y.id))) {
            const d = deploying.get(a.id);
            const image = a.container && a.container.docker ? a.container.docker.image : a.cmd || '';
            body.append(h('tr', { dataset: { app: a.id } },
              h('td', {}, h('a', { href: appHref(a.id) }, a.id)),
              h('td', { class: 'muted' }, image),
              h('td', { class: 'num' }, `${a.tasksRunning} / ${a.instances}`),
              h('td', { class: 'num' }, a.healthChecks && a.healthChecks.length ? `${a.tasksHealthy}` + (a.tasksUnhealthy ? ` (${a.tasksUnhealthy} unhealthy)` : '') : '–'),
              h('td', { class: 'num' }, a.tasksStaged),
              h('td', { class: 'num' }, a.cpus), h('td', { class: 'num' }, a.mem),
              h('td', {}, d ? h('span', { class: 'badge warn' }, (d.currentActions || []).map(x => x.action).join(', ') || 'deploying') : h('span', { class: 'badge ok' }, 'stable'))));
          }
        }
        showError(null);
        table.dataset.state = 'ready';
      } catch (e) { showError(e.message); }
    }
    await load();
    every(3000, load);
  }

  async function renderApp(r) {
    const id = '/' + r.rest.join('/');
    const title = h('h2', {}, id);
    const actions = h('div', { class: 'row' },
      h('button', { type: 'button', id: 'scale', onclick: () => scale() }, 'Scale…'),
      h('button', { type: 'button', id: 'restart', onclick: () => restart() }, 'Restart…'),
      h('a', { href: logsHash({ q: '', since: '1h', from: '', to: '', app: id, host: '', level: '', stream: '', container: '' }) }, 'All logs of this app →'));
    const info = h('div', { class: 'muted', id: 'app-info' });
    const waiting = h('div', { class: 'banner', id: 'queue-reason', hidden: true });
    const gateway = h('div', { class: 'muted', id: 'app-routes' });
    const tbody = h('tbody');
    const tasks = h('table', { id: 'tasks' }, h('thead', {}, h('tr', {},
      h('th', {}, 'Task'), h('th', {}, 'Node'), h('th', {}, 'Host:ports'), h('th', {}, 'State'), h('th', {}, 'Health'), h('th', { class: 'num' }, 'Uptime'))), tbody);
    // [key, title, unit, [[metric, agg, series suffix], ...]]
    const chartDefs = [
      ['cpu_pct', 'CPU %', '%', [['cpu_pct', 'mean', '']]],
      ['rss_pct', 'RSS % of memory limit', '%', [['rss_pct', 'mean', '']]],
      ['blkio', 'Block I/O (read, write)', 'bytes/s', [['blkio_read_bytes', 'rate', ' read'], ['blkio_write_bytes', 'rate', ' write']]],
      ['net', 'Network (rx, tx)', 'bytes/s', [['net_rx_bytes', 'rate', ' rx'], ['net_tx_bytes', 'rate', ' tx']]],
    ];
    const chartEls = chartDefs.map(([m, label]) => h('div', { class: 'panel chart-panel', dataset: { metric: m } }, h('h3', {}, label), h('div', { class: 'chart-box' })));
    const since = h('select', { id: 'chart-range' }, ['15m', '1h', '6h', '24h'].map(v => h('option', { value: v }, 'last ' + v)));
    const logs = h('div', { class: 'logs', id: 'app-logs' });
    view.replaceChildren(h('div', { class: 'row' }, h('a', { href: '#/apps' }, '← Apps')), title, actions, info, gateway, waiting,
      h('div', { class: 'panel' }, h('h3', {}, 'Tasks'), tasks),
      h('div', { class: 'row' }, h('h3', { style: 'margin:0' }, 'Resources per instance'), since),
      h('div', { class: 'grid', id: 'charts' }, chartEls),
      h('div', { class: 'panel' }, h('h3', {}, 'Recent logs'), logs));
    let app = null;

    async function loadApp() {
      try {
        const [a, t, q] = await Promise.all([api('/v2/apps' + id), api('/v2/apps' + id + '/tasks'), api('/v2/queue')]);
        app = a.app;
        // Tasks that wait for a place, and why (the scheduler's reason, as `drover app show`).
        const queued = (q.queue || []).find(x => x.app && x.app.id === id);
        const why = queued && queued.processedOffersSummary && (queued.processedOffersSummary.rejectSummaryLastOffers || [])[0];
        waiting.hidden = !queued;
        waiting.textContent = queued ? `${queued.count} task(s) waiting since ${fmtTs(queued.since)}: ${why && why.reason ? why.reason : 'no reason given yet'}` : '';
        const image = app.container && app.container.docker ? app.container.docker.image : '';
        info.textContent = `${app.tasksRunning}/${app.instances} running · ${image || app.cmd || ''} · ${app.cpus} CPU, ${app.mem} MiB each · version ${app.version}`;
        tbody.textContent = '';
        if (!t.tasks.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No tasks.')));
        for (const task of t.tasks.sort((x, y) => x.id.localeCompare(y.id))) {
          const hc = task.healthCheckResults && task.healthCheckResults[0];
          tbody.append(h('tr', { dataset: { task: task.id, state: task.state } },
            h('td', {}, h('code', {}, task.id)), h('td', {}, task.slaveId), h('td', {}, task.host + (task.ports && task.ports.length ? ':' + task.ports.join(',') : '')),
            h('td', {}, h('span', { class: 'badge ' + task.state }, task.state.replace('TASK_', '').toLowerCase())),
            h('td', {}, hc ? h('span', { class: 'badge ' + (hc.alive ? 'healthy' : 'unhealthy'), title: hc.lastFailureCause || '' }, hc.alive ? 'healthy' : 'unhealthy') : '–'),
            h('td', { class: 'num' }, task.startedAt ? ago(task.startedAt) : '–')));
        }
        tasks.dataset.running = String(t.tasks.filter(x => x.state === 'TASK_RUNNING').length);
        if (config.gateway !== false) {
          // Its routes on the gateway, or why its labels were refused.
          const gw = await api('/v1/gateway/routes').catch(() => null);
          if (gw) {
            const mine = gw.routes.filter(x => x.groups.some(g => g.app === id)).map(x => (x.host || '*') + x.path);
            const no = gw.refused.filter(x => x.app === id);
            gateway.replaceChildren(mine.length ? h('span', {}, 'routed: ', h('a', { href: '#/routes' }, mine.join(', '))) : '',
              ...no.map(x => h('div', { class: 'banner', dataset: { refused: x.app } }, 'gateway route refused: ' + x.reason)));
          }
        }
        tasks.dataset.state = 'ready';
        showError(null);
      } catch (e) { showError(e.message); }
    }

    async function loadCharts() {
      if (!config.metrics) { chartEls.forEach(c => { c.lastChild.textContent = 'No metrics store on this server.'; }); return; }
      await Promise.all(chartDefs.map(async ([, , unit, queries], i) => {
        const box = chartEls[i].lastChild;
        try {
          const answers = await Promise.all(queries.map(([metric, agg]) => api('/api/metrics/query?' + qs({ metric, app: id, by: 'instance', since: since.value, agg }))));
          const series = answers.flatMap((res, j) => res.series.map(s => ({ name: (s.labels.instance || '(app)') + queries[j][2], points: s.points })));
          const now = Date.now();
          charts.line(box, series, { unit, from: Date.parse(answers[0].from) || now - 900e3, to: Date.parse(answers[0].to) || now });
          chartEls[i].dataset.state = 'ready';
        } catch (e) { box.textContent = e.message; }
      }));
    }

    async function loadLogs() {
      if (!config.logs) return;
      try {
        const page = await api('/api/logs/search?' + qs({ app: id, since: '1h', limit: 20, snippets: false }));
        logs.textContent = '';
        if (!page.hits.length) logs.append(h('div', { class: 'empty' }, 'No lines in the last hour.'));
        for (const hit of page.hits) {
          logs.append(h('a', { class: 'log-row', href: logsHash({ q: '', since: '', from: new Date(Date.parse(hit.ts) - 60e3).toISOString(), to: new Date(Date.parse(hit.ts) + 60e3).toISOString(), app: id, host: '', level: '', stream: '', container: '' }) },
            h('span', { class: 'ts' }, fmtTs(hit.ts)), h('span', {}, hit.level ? h('span', { class: 'badge ' + hit.level }, hit.level) : ''),
            h('span', { class: 'app' }, hit.container_name), h('span', { class: 'msg' }, hit.line)));
        }
      } catch (e) { logs.textContent = e.message; }
    }

    async function scale() {
      const input = h('input', { type: 'number', min: 0, max: 1000, id: 'instances', value: app ? app.instances : 1, required: true });
      const form = await dialog(`Scale ${id}`, h('label', {}, 'Instances ', input), 'Scale');
      if (!form) return;
      try {
        await api('/v2/apps' + id, { method: 'PUT', body: JSON.stringify({ instances: Number(input.value) }) });
        loadApp();
      } catch (e) { showError(e.message); }
    }
    async function restart() {
      const form = await dialog(`Restart ${id}?`, h('p', {}, 'Every instance is replaced by a rolling deployment (within the app\'s upgrade strategy).'), 'Restart', true);
      if (!form) return;
      try { await api('/v2/apps' + id + '/restart', { method: 'POST', body: '{}' }); loadApp(); } catch (e) { showError(e.message); }
    }
    since.addEventListener('change', loadCharts);
    await Promise.all([loadApp(), loadCharts(), loadLogs()]);
    every(3000, loadApp);
    every(10000, loadCharts);
    every(10000, loadLogs);
  }

  // ---------------------------------------------------------------- nodes
  async function renderNodes() {
    const body = h('tbody');
    const table = h('table', { id: 'nodes' }, h('thead', {}, h('tr', {},
      h('th', {}, 'Node'), h('th', {}, 'Status'), h('th', {}, 'CPUs used / total'), h('th', {}, 'Memory used / total'),
      h('th', { class: 'num' }, 'Tasks'), h('th', { class: 'num' }, 'Last seen'), h('th', {}, ''))), body);
    view.replaceChildren(h('h2', {}, 'Nodes'), h('div', { class: 'panel' }, table));
    const bar = (used, total, unit) => h('div', {}, h('div', { class: 'meter' }, h('span', { style: `width:${Math.min(100, total ? used / total * 100 : 0).toFixed(1)}%` })),
      h('small', { class: 'muted' }, `${+used.toFixed(2)} / ${+total.toFixed(2)} ${unit} · ${+(total - used).toFixed(2)} free`));
    async function act(node, action) {
      const verbs = { cordon: 'No new tasks are placed on it; running ones stay.', uncordon: 'It takes new tasks again.', drain: 'It is cordoned and its tasks are moved to other nodes.', remove: 'It is forgotten; its tasks are replaced elsewhere. An agent that still runs re-registers.' };
      const ok = await dialog(`${action[0].toUpperCase() + action.slice(1)} ${node.id}?`, h('p', {}, verbs[action]), action, action !== 'uncordon');
      if (!ok) return;
      try {
        if (action === 'remove') await api('/v1/nodes/' + encodeURIComponent(node.id), { method: 'DELETE' });
        else await api(`/v1/nodes/${encodeURIComponent(node.id)}/${action}`, { method: 'POST', body: '{}' });
        load();
      } catch (e) { showError(e.message); }
    }
    async function load() {
      try {
        const res = await api('/v1/nodes');
        body.textContent = '';
        if (!res.nodes.length) body.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No nodes: start an agent (drover agent --master URL).')));
        for (const n of res.nodes) {
          body.append(h('tr', { dataset: { node: n.id, status: n.status } },
            h('td', {}, h('b', {}, n.id), h('br'), h('small', { class: 'muted' }, n.hostname)),
            h('td', {}, h('span', { class: 'badge ' + n.status }, n.status)),
            h('td', {}, bar(n.used.cpus, n.resources.cpus, 'CPU')),
            h('td', {}, bar(n.used.mem, n.resources.mem, 'MiB')),
            h('td', { class: 'num' }, n.tasks),
            h('td', { class: 'num' }, ago(n.lastSeen) + ' ago'),
            h('td', {}, h('div', { class: 'row' },
              n.cordoned ? h('button', { class: 'small', type: 'button', onclick: () => act(n, 'uncordon') }, 'Uncordon')
                : h('button', { class: 'small', type: 'button', onclick: () => act(n, 'cordon') }, 'Cordon'),
              h('button', { class: 'small', type: 'button', onclick: () => act(n, 'drain') }, 'Drain'),
              h('button', { class: 'small danger', type: 'button', onclick: () => act(n, 'remove') }, 'Remove')))));
        }
        table.dataset.state = 'ready';
        showError(null);
      } catch (e) { showError(e.message); }
    }
    await load();
    every(3000, load);
  }

  // ---------------------------------------------------------------- events
  function describe(e) {
    const t = e.eventType;
    if (t === 'status_update_event') return `${e.taskId} ${e.taskStatus.replace('TASK_', '').toLowerCase()} on ${e.slaveId || e.host}${e.message ? ': ' + e.message : ''}`;
    if (t === 'health_status_changed_event') return `${e.taskId || e.instanceId} is ${e.alive ? 'healthy' : 'unhealthy'}`;
    if (t === 'unhealthy_task_kill_event') return `${e.taskId} killed: ${e.reason || 'unhealthy'}`;
    if (t && t.startsWith('deployment')) return `${e.id || (e.plan && e.plan.id) || ''} ${(e.plan && e.plan.affectedApps || []).join(', ')}`;
    if (t === 'api_post_event') return `${e.uri || ''}`;
    if (t === 'node_update_event') return `node ${e.nodeId}: ${e.action} → ${e.status}`;
    if (t === 'node_unreachable_event' || t === 'node_reachable_event') return `node ${e.nodeId || ''}`;
    return e.message || e.nodeId || e.appId || '';
  }
  async function renderEvents() {
    const list = h('div', { class: 'timeline', id: 'events' });
    const status = h('span', { class: 'muted' }, 'connecting…');
    view.replaceChildren(h('div', { class: 'row' }, h('h2', {}, 'Events'), status), h('div', { class: 'panel' }, list));
    const item = e => {
      const app = e.appId || (e.appDefinition && e.appDefinition.id) || (e.plan && (e.plan.affectedApps || [])[0]);
      const sev = /FAILED|UNREACHABLE|unhealthy|failed|unreachable/.test(JSON.stringify([e.taskStatus, e.eventType, e.alive === false ? 'unhealthy' : ''])) ? 'warn' : '';
      return h('div', { class: 'ev', dataset: { type: e.eventType } }, h('span', { class: 'muted' }, fmtTs(e.timestamp)),
        h('span', {}, h('span', { class: 'badge ' + sev }, e.eventType)),
        h('span', {}, app ? h('a', { href: appHref(app) }, app) : '', ' ', describe(e)));
    };
    try {
      const res = await api('/v1/events?limit=300');
      if (!res.events.length) list.append(h('div', { class: 'empty' }, 'No events yet: deploy an app.'));
      for (const e of res.events) list.append(item(e));
      list.dataset.state = 'ready';
    } catch (e) { showError(e.message); }
    const src = new EventSource('/v2/events');
    src.onopen = () => { status.textContent = '● live'; };
    src.onerror = () => { status.textContent = 'reconnecting…'; };
    src.onmessage = null;
    const onEvent = ev => { try { const e = JSON.parse(ev.data); if (e.eventType !== 'event_stream_attached') list.prepend(item(e)); } catch (_) { /* ignore */ } };
    for (const t of ['status_update_event', 'health_status_changed_event', 'unhealthy_task_kill_event', 'api_post_event', 'deployment_info', 'deployment_success', 'deployment_failed', 'app_terminated_event', 'node_unreachable_event', 'node_reachable_event', 'node_update_event']) {
      src.addEventListener(t, onEvent);
    }
    cleanup.push(() => src.close());
  }

  // ---------------------------------------------------------------- routes (the gateway)
  function fmtMs(v) { return v == null ? '–' : (v < 10 ? v.toFixed(2) : v.toFixed(0)) + ' ms'; }
  async function renderRoutes() {
    const body = h('tbody');
    const table = h('table', { id: 'routes' }, h('thead', {}, h('tr', {},
      h('th', {}, 'Host and path'), h('th', {}, 'App'), h('th', {}, 'Backend'), h('th', {}, 'Health'),
      h('th', { class: 'num' }, 'In flight'), h('th', { class: 'num' }, 'Req/s'), h('th', { class: 'num' }, 'p99'), h('th', {}, 'Task'))), body);
    const refusedBody = h('tbody');
    const refused = h('table', { id: 'refused' }, h('thead', {}, h('tr', {}, h('th', {}, 'App'), h('th', {}, 'Host and path'), h('th', {}, 'Why refused'))), refusedBody);
    const source = h('div', { class: 'muted', id: 'routes-source' });
    view.replaceChildren(h('h2', {}, 'Routes'), source,
      h('div', { class: 'panel' }, table),
      h('div', { class: 'panel' }, h('h3', {}, 'Refused routes'), refused));
    async function load() {
      try {
        const res = await api('/v1/gateway/routes');
        const s = res.source || {};
        source.textContent = (s.master ? `following ${s.master} · ${s.connected ? 'connected' : 'not connected' + (s.last_error ? ': ' + s.last_error : '')}` : 'routes applied by hand')
          + (res.built_at ? ` · table built ${ago(res.built_at)} ago` : '');
        body.textContent = '';
        if (!res.routes.length) body.append(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No routes: give an app the label drover.gateway.host (or marathon-lb\'s HAPROXY_0_VHOST).')));
        for (const r of res.routes) {
          const name = (r.host || '*') + r.path;
          body.append(h('tr', { class: 'group', dataset: { route: name } }, h('td', { colspan: 8 },
            name, r.service ? ` · service ${r.service} · hash ${r.hash_key.kind}${r.hash_key.name ? ':' + r.hash_key.name : ''}` : '', ` · ${r.labels} labels`)));
          for (const g of r.groups) {
            const head = h('tr', { dataset: { app: g.app } },
              h('td', {}, ''), h('td', {}, h('a', { href: appHref(g.app) }, g.app), h('br'), h('small', { class: 'muted' }, `${g.backends.length} of ${g.tasks} task(s) take traffic`)),
              h('td', {}, g.backends.length ? '' : h('span', { class: 'badge unhealthy' }, 'no backend: 503')), h('td', {}, ''),
              h('td', { class: 'num' }, g.in_flight), h('td', { class: 'num' }, g.rps.toFixed(1)), h('td', { class: 'num' }, fmtMs(g.p99_ms)), h('td', {}, ''));
            body.append(head);
            for (const b of g.backends) {
              body.append(h('tr', { dataset: { backend: b.addr, ejected: String(b.ejected) } },
                h('td', {}, ''), h('td', {}, ''), h('td', {}, h('code', {}, b.addr)),
                h('td', {}, b.ejected ? h('span', { class: 'badge unhealthy', title: `ejected ${b.ejections} time(s)` }, `ejected until ${fmtTs(b.ejected_until)}`)
                  : h('span', { class: 'badge ok', title: `${b.consecutive_failures} failure(s) in a row` }, 'ok')),
                h('td', { class: 'num' }, b.in_flight), h('td', { class: 'num' }, b.rps.toFixed(1)), h('td', { class: 'num' }, fmtMs(b.p99_ms)),
                h('td', {}, h('small', { class: 'muted' }, b.task))));
            }
          }
        }
        refusedBody.textContent = '';
        if (!res.refused.length) refusedBody.append(h('tr', {}, h('td', { colspan: 3, class: 'empty' }, 'None: every labelled app is routed.')));
        for (const x of res.refused) {
          refusedBody.append(h('tr', { dataset: { app: x.app } }, h('td', {}, h('a', { href: appHref(x.app) }, x.app)),
            h('td', {}, x.host || x.path ? (x.host || '*') + (x.path || '') : '–'), h('td', { class: 'reason' }, x.reason)));
        }
        table.dataset.state = 'ready';
        showError(null);
      } catch (e) { showError(e.message); }
    }
    await load();
    every(2000, load);
  }
  // ---------------------------------------------------------------- audit
  // Every write to this server (who, role, what, status, from where), newest first. Admins only.
  async function renderAudit() {
    const body = h('tbody', { id: 'audit-rows' });
    view.replaceChildren(
      h('h2', {}, 'Audit'),
      h('p', { class: 'muted' }, 'Every write to this server since it started: also on drover.events.v1 (kind audit) and drover audit.'),
      h('div', { class: 'panel' }, h('table', { id: 'audit-table' },
        h('thead', {}, h('tr', {}, ['Time', 'Who', 'Role', 'Via', 'Method', 'Path', 'Status', 'Source'].map(t => h('th', {}, t)))),
        body)));
    const load = async () => {
      const recs = await api('/api/audit?limit=500');
      body.replaceChildren(...(recs.length ? recs.map(r => h('tr', { class: 'audit-row' },
        h('td', {}, fmtTs(r.ts)), h('td', {}, r.who), h('td', {}, r.role || '–'), h('td', {}, r.via),
        h('td', {}, r.method), h('td', {}, h('code', {}, r.path)), h('td', {}, String(r.status)), h('td', {}, r.source || '–')))
        : [h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No writes yet.'))]));
    };
    await load();
    every(5000, () => load().catch(e => showError(e.message)));
  }

  // Pages in their own files (alerts.js) register on window.DroverPages and use these.
  window.DroverUI = { h, api, csrf, showError, every, dialog, fmtTs, ago, appHref, go, qs, view };

  // ---------------------------------------------------------------- router
  function showNav(r) {
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.page === r.page || (r.page === 'app' && a.dataset.page === 'apps'));
      a.hidden = config[a.dataset.needs] === false;
    }
  }

  // The parts of the server a page draws from, the one it cannot do without first: only a
  // change in one of these redraws it when the config arrives (a redraw would throw away
  // results the page has already shown).
  function pageNeeds(page) {
    const extra = (window.DroverPages || {})[page];
    return { logs: ['logs'], apps: ['scheduler'], app: ['scheduler', 'metrics', 'logs', 'gateway'], nodes: ['scheduler'],
      events: ['scheduler'], routes: ['gateway'] }[page] || (extra && extra.needs ? [extra.needs] : []);
  }

  function render() {
    for (const f of cleanup.splice(0)) { try { f(); } catch (_) { /* already gone */ } }
    showError(null);
    const r = route();
    showNav(r);
    const pages = { logs: renderLogs, apps: renderApps, app: renderApp, nodes: renderNodes, events: renderEvents, routes: renderRoutes, audit: renderAudit };
    const extra = (window.DroverPages || {})[r.page];
    const page = pages[r.page] || (extra && extra.render);
    document.title = 'Drover · ' + (r.page === 'app' ? '/' + r.rest.join('/') : r.page);
    if (!page) { view.replaceChildren(h('div', { class: 'empty' }, `No page "${r.page}". `, h('a', { href: '#/logs' }, 'Go to logs'))); return; }
    const needs = pageNeeds(r.page)[0];
    if (config[needs] === false) { view.replaceChildren(h('div', { class: 'empty' }, `This server has no ${needs}: this page is served by drover up or the role that runs it.`)); return; }
    Promise.resolve(page(r)).catch(e => showError(e.message));
  }

  window.addEventListener('hashchange', render);
  render(); // the first page does not wait for the config
  // Who is logged in, and the logout button (when authentication is on).
  fetch('/api/auth/whoami').then(r => (toLogin(r) ? null : r.json())).then(w => {
    if (!w || w.auth === 'off') return;
    document.getElementById('whoami').textContent = `${w.name} (${w.role})`;
    const out = document.getElementById('logout');
    out.hidden = false;
    out.addEventListener('click', async () => {
      await fetch('/logout', { method: 'POST', headers: csrf('POST') }).catch(() => null);
      location.href = '/login';
    });
  }).catch(() => { /* an older server: no auth */ });
  fetch('/ui/config.json').then(r => r.json()).then(c => {
    // A part is assumed present until the config says false (see render and the pages).
    const changed = pageNeeds(route().page).some(k => (c[k] !== false) !== (config[k] !== false));
    config = c;
    document.getElementById('footer').textContent = `Drover ${c.version}`;
    showNav(route());
    if (changed) render();
  }).catch(() => { /* keep the defaults */ });
})();
