// Drover's Autoscaler page: every policy with its status (paused and why, panic, a refused
// change waiting for its retry), the instances now and its bounds, its last decision; a policy's
// detail (#/autoscaler/NAME) charts the last hour's instances against the load and its target
// with the changes marked, shows the last decision in words and the kept decisions (winner,
// the rules that held the count back, what was done or why it was refused), and lets the
// policy be edited (PUT, checked as a file is). Registered on window.DroverPages; app.js gives
// the helpers.
'use strict';
(function () {
  window.DroverPages = window.DroverPages || {};

  // Metrics read as a total over the instances (the policy's target is per instance).
  const TOTALS = ['concurrency', 'request_rate'];
  const OUTCOME_BADGE = { applied: 'ok', dry_run: 'info', refused: 'error', paused: 'warning', planned: 'info', unchanged: '' };
  const path = id => id.split('/').map(encodeURIComponent).join('/');
  const num = v => v == null ? '–' : Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);

  window.DroverPages.autoscaler = { needs: 'autoscaler', render: async function renderAutoscaler(r) {
    const { h, api, showError, every, fmtTs, ago, appHref, view } = window.DroverUI;
    const charts = window.DroverCharts;
    const selected = r.rest[0] || '';

    const listBody = h('tbody');
    const listTable = h('table', { id: 'policies' }, h('thead', {}, h('tr', {},
      h('th', {}, 'Policy'), h('th', {}, 'Target'), h('th', {}, 'Status'), h('th', {}, 'Metrics'),
      h('th', { class: 'num' }, 'Instances'), h('th', {}, 'Bounds'), h('th', {}, 'Last decision'))), listBody);
    const detail = h('div', { id: 'policy-detail', hidden: !selected, dataset: { policy: selected } });
    view.replaceChildren(
      h('h2', {}, 'Autoscaler', selected ? h('small', { class: 'muted' }, ' · policy ' + selected) : ''),
      h('div', { class: 'panel' }, listTable),
      detail);

    function target(p) {
      const t = p.target || {};
      return h('span', {}, h('a', { href: appHref(t.id) }, t.id), t.kind === 'service' ? h('small', { class: 'muted' }, ' service') : '');
    }
    function statusCell(v) {
      const st = v.status.state;
      return h('span', { class: 'status' },
        h('span', { class: 'badge ' + (st === 'active' ? 'ok' : 'warning'), dataset: { status: st } }, st),
        v.panic ? h('span', { class: 'badge error', 'data-panic': '' }, 'panic') : '',
        v.policy.dry_run ? h('span', { class: 'badge info' }, 'dry run') : '',
        st === 'paused' ? h('div', { class: 'reason' }, h('small', { class: 'muted' }, v.status.reason + (v.status.since ? ` (since ${ago(v.status.since)} ago)` : ''))) : '',
        v.retry ? h('div', { class: 'reason' }, h('small', { class: 'muted' },
          `refused ${v.retry.attempts}×: ${v.retry.reason}; retried at ${fmtTs(v.retry.at).slice(11, 19)}`)) : '');
    }
    const metricText = m => `${m.kind === 'series' ? 'series:' + m.series : m.kind} ${TOTALS.includes(m.kind) ? m.target + '/instance' : '≤ ' + m.target}`;

    // ------------------------------------------------------------------ the list
    let views = [];
    let explains = []; // each policy's explain answer (null: none), in views' order
    async function loadList() {
      views = await api('/api/autoscaler/policies');
      // The instances now: each policy's last tick (explain's `last`, every tick's).
      explains = await Promise.all(views.map(v => api('/api/autoscaler/explain' + path(v.policy.target.id)).catch(() => null)));
      const lasts = explains.map(x => x && x.last);
      listBody.textContent = '';
      if (!views.length) listBody.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No policies: start drover up with --policies FILE (see autoscaler/README.md).')));
      views.forEach((v, i) => {
        const p = v.policy, last = lasts[i];
        const service = p.target.kind === 'service';
        listBody.append(h('tr', {
          class: p.name === selected ? 'selected' : null,
          dataset: { policy: p.name, target: p.target.id, state: v.status.state, panic: String(v.panic) },
        },
          h('td', {}, h('a', { href: '#/autoscaler/' + encodeURIComponent(p.name), class: 'policy-link' }, h('b', {}, p.name)),
            p.origin && p.origin.file ? h('div', {}, h('small', { class: 'muted' }, p.origin.file === 'api' ? 'put through the API' : `${p.origin.file.split('/').pop()}:${p.origin.target_line}`)) : ''),
          h('td', {}, target(p)),
          h('td', {}, statusCell(v)),
          h('td', {}, p.metrics.map(m => h('div', {}, h('small', {}, metricText(m))))),
          h('td', { class: 'num', dataset: { instances: last ? String(last.current) : '' } },
            last ? h('span', {}, h('b', {}, last.desired), last.desired !== last.current ? h('small', { class: 'muted' }, ` (was ${last.current})`) : '',
              h('br'), h('small', { class: 'muted' }, `${last.ready} ready` + (service ? ` · ${last.groups_before.length} group(s)` : ''))) : '–'),
          h('td', {}, h('small', {}, `${p.instances.min}–${p.instances.max} instances` + (service ? ` per group · ${p.groups.min}–${p.groups.max} groups` : ''))),
          h('td', { class: 'last' }, v.last || h('span', { class: 'muted' }, 'no decision yet'),
            last ? h('div', {}, h('small', { class: 'muted' }, ago(last.at) + ' ago')) : '')));
      });
      listTable.dataset.state = 'ready';
    }

    // ------------------------------------------------------------------ the detail
    let built = null; // the detail's parts, built once per page
    function buildDetail(v) {
      const p = v.policy;
      const instancesChart = h('div', { id: 'chart-instances', class: 'as-chart' });
      const loadCharts = h('div', { id: 'chart-load' });
      const explain = h('pre', { id: 'explain', class: 'explain' });
      const decBody = h('tbody');
      const decTable = h('table', { id: 'decisions' }, h('thead', {}, h('tr', {},
        h('th', {}, 'Time'), h('th', { class: 'num' }, 'Instances'), h('th', {}, 'Metrics'), h('th', {}, 'Winner'),
        h('th', {}, 'Held by'), h('th', {}, 'Changes'), h('th', {}, 'Outcome'))), decBody);
      const head = h('div', { class: 'row' });
      // Edit: the policy as written (JSON is YAML), PUT back; refusals show file `api`, line, field.
      const editText = h('textarea', { id: 'policy-edit', rows: 14, spellcheck: 'false' });
      editText.value = JSON.stringify(p.config || {}, null, 2);
      const editError = h('pre', { id: 'policy-edit-error', class: 'banner', hidden: true });
      const editOk = h('span', { id: 'policy-edit-ok', class: 'muted' });
      const editForm = h('form', { id: 'policy-edit-form' }, editText, editError,
        h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit', id: 'policy-save' }, 'Save policy'), editOk,
          h('small', { class: 'muted' }, 'YAML or JSON, checked as a policy file is; the app must exist.')));
      editForm.addEventListener('submit', async ev => {
        ev.preventDefault();
        editError.hidden = true; editOk.textContent = '';
        const url = '/api/autoscaler/policies/' + encodeURIComponent(p.name);
        try {
          const resp = await fetch(url, { method: 'PUT', body: editText.value, headers: Object.assign({ 'content-type': 'application/yaml' }, window.DroverUI.csrf('PUT')) });
          const body = await resp.json().catch(() => null);
          if (!resp.ok) {
            // A refused policy: one line per problem (file `api`, the body's line, the field).
            const errs = body && body.detail && body.detail.errors;
            editError.textContent = errs && errs.length
              ? errs.map(e => `${e.file}${e.line ? ":" + e.line : ""}: ${e.field ? e.field + ': ' : ''}${e.message}`).join('\n')
              : (body && body.error) || `HTTP ${resp.status} from ${url}`;
            editError.hidden = false;
            return;
          }
          editOk.textContent = 'saved at ' + new Date().toLocaleTimeString() + ': it applies from the next tick';
          await load();
        } catch (e) { editError.hidden = false; editError.textContent = `cannot reach the Drover server (${e.message})`; }
      });
      detail.replaceChildren(
        h('div', { class: 'panel' }, head,
          h('div', { class: 'grid' },
            h('div', {}, h('h3', {}, 'Instances, last hour'), instancesChart),
            loadCharts)),
        h('div', { class: 'panel' }, h('h3', {}, 'Last decision'), explain),
        h('div', { class: 'panel' }, h('h3', {}, 'Decisions'), decTable),
        h('details', { class: 'panel', id: 'policy-edit-panel' }, h('summary', {}, h('b', {}, 'Edit policy')), editForm));
      return { name: p.name, head, instancesChart, loadCharts, explain, decBody, decTable };
    }

    // Vertical marks at the ticks that changed something, on a chart drawn by charts.line
    // with opts.from/to (its plot area: 56 px on the left, 10 on the right, 8 top, 22 bottom).
    function markChanges(svg, marks, from, to) {
      if (!svg || !svg.viewBox || !svg.viewBox.baseVal) return;
      const { width: W, height: H } = svg.viewBox.baseVal;
      const NS = 'http://www.w3.org/2000/svg';
      for (const m of marks) {
        const x = 56 + (m.t - from) / Math.max(to - from, 1) * (W - 66);
        const l = document.createElementNS(NS, 'line');
        for (const [k, val] of Object.entries({ x1: x, x2: x, y1: 8, y2: H - 22, stroke: m.panic ? '#cf222e' : '#8250df', 'stroke-width': 1, 'stroke-dasharray': '2 2', class: 'decision' })) l.setAttribute(k, val);
        const title = document.createElementNS(NS, 'title');
        title.textContent = m.text;
        l.append(title);
        svg.append(l);
      }
      svg.dataset.decisions = String(marks.length);
    }
    // charts.line draws a path per series with two points or more, in order: name them.
    function nameSeries(svg, series) {
      if (!svg) return;
      const paths = svg.querySelectorAll('path.series');
      let k = 0;
      for (const s of series) {
        const n = s.points.filter(p => p[1] != null && isFinite(p[1])).length;
        if (n >= 2 && paths[k]) paths[k++].dataset.name = s.key;
      }
    }
    function draw(el, series, opts, marks) {
      const svg = charts.line(el, series, opts);
      nameSeries(svg, series);
      markChanges(svg, marks, opts.from, opts.to);
      el.dataset.series = series.filter(s => s.points.length).map(s => s.key).join(' ');
      el.dataset.state = 'ready';
    }

    function drawCharts(v, hist, decisions) {
      const service = v.policy.target.kind === 'service';
      const pts = hist.points.map(p => Object.assign({ ms: Date.parse(p.t) }, p));
      const to = pts.length ? pts[pts.length - 1].ms : Date.now();
      const from = pts.length ? Math.min(pts[0].ms, to - 60e3) : to - 3600e3;
      const marks = [];
      for (let i = 0; i < pts.length; i++) {
        if (!pts[i].changed) continue;
        const prev = i ? pts[i - 1].instances : pts[i].ready;
        const d = decisions.find(d => Math.abs(Date.parse(d.at) - pts[i].ms) < 1000);
        marks.push({ t: pts[i].ms, panic: pts[i].panic, text: d ? `${fmtTs(d.at)}\n${d.current} → ${d.desired} (${d.winner} wins)` : `${new Date(pts[i].ms).toLocaleTimeString()}: ${prev} → ${pts[i].instances}` });
      }
      const total = hist.metrics.findIndex(([m]) => TOTALS.includes(m));
      const inst = [
        { key: 'instances', name: 'instances asked', points: pts.map(p => [p.ms, p.instances]) },
        { key: 'ready', name: 'ready', points: pts.map(p => [p.ms, p.ready]) },
      ];
      if (service) inst.push({ key: 'groups', name: 'groups', points: pts.map(p => [p.ms, p.groups]) });
      if (total >= 0) {
        const [m, t] = hist.metrics[total];
        inst.push({ key: 'needed', name: `needed (${m} ÷ ${t})`, points: pts.map(p => [p.ms, p.values[total] == null ? null : p.values[total] / t]) });
      }
      draw(built.instancesChart, inst, { from, to, unit: '' }, marks);
      // One chart per metric: its value against its target (a total's: target × ready).
      if (built.loadCharts.childElementCount !== hist.metrics.length) {
        built.loadCharts.replaceChildren(...hist.metrics.map(([m], i) => h('div', {}, h('h3', {}, 'Load: ' + m), h('div', { class: 'as-chart load', dataset: { metric: m, index: i } }))));
      }
      hist.metrics.forEach(([m, t], i) => {
        const el = built.loadCharts.querySelectorAll('.as-chart.load')[i];
        const isTotal = TOTALS.includes(m);
        const unit = m.startsWith('latency') ? 'ms' : m.endsWith('_pct') ? '%' : '';
        draw(el, [
          { key: 'load', name: m + (isTotal ? ' (total)' : ''), points: pts.filter(p => p.values.length > i).map(p => [p.ms, p.values[i]]) },
          { key: 'target', name: isTotal ? `target (${t}/instance × ready)` : `target (${t})`, points: pts.map(p => [p.ms, isTotal ? t * p.ready : t]) },
        ], { from, to, unit }, marks);
      });
    }

    function decisionRow(d) {
      const o = d.outcome || {};
      const changes = [
        ...d.resize.map(g => `resize ${g.app} ${g.from} → ${g.to}`),
        ...d.add.map(g => `add ${g.app} with ${g.to}`),
        ...(d.remove ? [`drain and remove ${d.remove}`] : []),
      ];
      return h('tr', { dataset: { at: d.at, outcome: o.state, winner: d.winner } },
        h('td', {}, fmtTs(d.at).slice(11), h('br'), h('small', { class: 'muted' }, ago(d.at) + ' ago')),
        h('td', { class: 'num' }, h('b', {}, `${d.current} → ${d.desired}`), h('br'), h('small', { class: 'muted' }, `${d.ready} ready · wanted ${d.recommended}`)),
        h('td', {}, d.metrics.map(m => h('div', { title: m.note }, h('small', {}, `${m.metric}: ${num(m.value)} (target ${num(m.target)}) → ${m.recommendation == null ? 'no opinion' : m.recommendation}`)))),
        h('td', { class: 'winner' }, h('span', { class: 'badge' }, d.winner), d.panic ? h('div', {}, h('span', { class: 'badge error', title: 'in panic mode after this tick' }, 'panic mode')) : ''),
        h('td', { class: 'held' }, d.held.length ? d.held.map(x => h('div', { title: x.detail, dataset: { rule: x.rule } }, h('code', {}, x.rule), h('small', { class: 'muted' }, ` ${x.from} → ${x.to}`))) : h('span', { class: 'muted' }, '–')),
        h('td', {}, changes.length ? changes.map(c => h('div', {}, h('small', {}, c))) : h('span', { class: 'muted' }, '–')),
        h('td', { class: 'outcome' }, h('span', { class: 'badge ' + (OUTCOME_BADGE[o.state] || '') }, (o.state || '').replace('_', ' ')),
          o.reason ? h('div', { class: 'reason' }, h('small', {}, o.reason)) : '',
          o.retry_at ? h('div', {}, h('small', { class: 'muted' }, 'retried at ' + fmtTs(o.retry_at).slice(11, 19))) : ''));
    }

    async function loadDetail() {
      const v = views.find(x => x.policy.name === selected);
      if (!v) {
        detail.hidden = false;
        detail.replaceChildren(h('div', { class: 'panel empty' }, `No policy named "${selected}". `, h('a', { href: '#/autoscaler' }, 'All policies')));
        built = null;
        return;
      }
      if (!built || built.name !== selected) built = buildDetail(v);
      detail.hidden = false;
      const id = v.policy.target.id;
      const known = explains[views.indexOf(v)];
      const [hist, ex, dec] = await Promise.all([
        api('/api/autoscaler/history' + path(id)),
        known ? known : api('/api/autoscaler/explain' + path(id)),
        api('/api/autoscaler/decisions?' + new URLSearchParams({ app: id, limit: '50' })),
      ]);
      const p = v.policy;
      built.head.replaceChildren(h('h3', {}, p.name), target(p), statusCell(v),
        h('small', { class: 'muted' }, `window ${p.window} · stabilization up ${p.stabilize_up}, down ${p.stabilize_down} · tolerance ±${Math.round(p.tolerance * 100)} % · tick ${p.tick}`));
      drawCharts(v, hist, dec.decisions);
      built.explain.textContent = ex.text || 'No decision yet: the policy has not ticked.';
      built.explain.dataset.state = ex.text ? 'ready' : 'empty';
      built.decBody.textContent = '';
      if (!dec.decisions.length) built.decBody.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No decision worth keeping yet: the count has matched the load.')));
      for (const d of dec.decisions) built.decBody.append(decisionRow(d));
      built.decTable.dataset.state = 'ready';
    }

    let busy = false;
    async function load() {
      if (busy) return; // a slow answer: skip this refresh rather than pile them up
      busy = true;
      try {
        await loadList();
        if (selected) await loadDetail();
        showError(null);
      } catch (e) { showError(e.message); } finally { busy = false; }
    }
    await load();
    every(2000, load);
  } };
})();
