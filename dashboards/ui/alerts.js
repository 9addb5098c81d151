// Drover's Alerts page: firing and pending alerts (silenced and inhibited ones marked), the
// rules and their health, the silences with a form to add one and a button to expire one, and
// the history as a timeline. Registered on window.DroverPages; app.js gives the helpers.
'use strict';
(function () {
  window.DroverPages = window.DroverPages || {};

  window.DroverPages.alerts = { needs: 'alerts', render: async function renderAlerts(r) {
    const { h, api, showError, every, dialog, fmtTs, ago, appHref, view } = window.DroverUI;
    const alertsBody = h('tbody');
    const alertsTable = h('table', { id: 'alerts' }, h('thead', {}, h('tr', {},
      h('th', {}, 'State'), h('th', {}, 'Alert'), h('th', {}, 'Labels'), h('th', { class: 'num' }, 'Value'),
      h('th', {}, 'Since'), h('th', {}, 'Summary'), h('th', {}, ''))), alertsBody);
    const rulesBody = h('tbody');
    const rulesTable = h('table', { id: 'rules' }, h('thead', {}, h('tr', {},
      h('th', {}, 'Rule'), h('th', {}, 'Expression'), h('th', {}, 'For'), h('th', {}, 'Health'), h('th', {}, 'Last evaluation'), h('th', {}, 'Receivers'))), rulesBody);
    const silencesBody = h('tbody');
    const silencesTable = h('table', { id: 'silences' }, h('thead', {}, h('tr', {},
      h('th', {}, 'State'), h('th', {}, 'Matchers'), h('th', {}, 'Until'), h('th', {}, 'By'), h('th', {}, 'Comment'), h('th', {}, ''))), silencesBody);
    const timeline = h('div', { class: 'timeline', id: 'history' });
    const reload = h('div', { class: 'banner', id: 'reload-error', hidden: true });
    const stateFilter = h('select', { id: 'history-kind', title: 'Which entries' },
      [['', 'Everything'], ['transition', 'Transitions'], ['notification', 'Notifications'], ['action', 'Actions'], ['silence', 'Silences'], ['rules', 'Rule reloads']]
        .map(([v, l]) => h('option', { value: v, selected: (r.params.get('kind') || '') === v }, l)));
    const ruleFilter = r.params.get('rule') || '';
    const matchersIn = h('input', { id: 'silence-matchers', placeholder: 'alertname="HighCpu", app="/shop"', required: true, size: 40 });
    const forIn = h('input', { id: 'silence-for', value: '2h', size: 5, title: 'How long (30m, 2h, 1d)' });
    const byIn = h('input', { id: 'silence-by', placeholder: 'your name', required: true, size: 12 });
    const commentIn = h('input', { id: 'silence-comment', placeholder: 'why', size: 24 });
    const silenceForm = h('form', { class: 'row', id: 'silence-form' }, 'Silence', matchersIn, 'for', forIn, 'by', byIn, commentIn,
      h('button', { class: 'primary', type: 'submit', id: 'silence-add' }, 'Add silence'));
    view.replaceChildren(
      h('h2', {}, 'Alerts', ruleFilter ? h('small', { class: 'muted' }, ' · rule ' + ruleFilter) : ''), reload,
      h('div', { class: 'panel' }, h('h3', {}, 'Firing and pending'), alertsTable),
      h('div', { class: 'panel' }, h('h3', {}, 'Silences'), silenceForm, silencesTable),
      h('div', { class: 'panel' }, h('h3', {}, 'Rules'), rulesTable),
      h('div', { class: 'panel' }, h('div', { class: 'row' }, h('h3', {}, 'History'), stateFilter), timeline));

    const labelText = l => Object.entries(l || {}).filter(([k]) => k !== 'alertname').map(([k, v]) => `${k}=${v}`).join(' ');
    const value = v => v == null ? '–' : (Math.abs(v) >= 100 || Number.isInteger(v) ? String(+v.toFixed(1)) : v.toFixed(3));
    const dur = s => !s ? '0s' : s % 3600 === 0 ? s / 3600 + 'h' : s % 60 === 0 ? s / 60 + 'm' : s + 's';

    function silenceFor(a) {
      matchersIn.value = `alertname="${a.labels.alertname}"` + (a.labels.app ? `, app="${a.labels.app}"` : '') + (a.labels.instance ? `, instance="${a.labels.instance}"` : '');
      matchersIn.focus();
    }

    async function load() {
      try {
        const res = await api('/api/alerts');
        alertsBody.textContent = '';
        const shown = res.alerts.filter(a => !ruleFilter || a.labels.alertname === ruleFilter);
        if (!shown.length) alertsBody.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'Nothing is firing.')));
        for (const a of shown) {
          const muted = (a.silencedBy || []).length ? 'silenced' : (a.inhibitedBy || []).length ? 'inhibited' : '';
          const sev = a.labels.severity || '';
          alertsBody.append(h('tr', { dataset: { alert: a.labels.alertname, state: a.state, muted } },
            h('td', {}, h('span', { class: 'badge ' + (a.state === 'firing' ? (sev === 'critical' ? 'error' : 'warning') : 'info') }, a.state),
              muted ? h('span', { class: 'badge' }, ' ' + muted) : ''),
            h('td', {}, h('b', {}, a.labels.alertname), sev ? h('br') : '', sev ? h('small', { class: 'muted' }, sev) : ''),
            h('td', {}, h('small', {}, labelText(a.labels)), a.labels.app ? h('div', {}, h('a', { href: appHref(a.labels.app) }, 'charts'), ' · ',
              h('a', { href: '#/logs?since=15m&app=' + encodeURIComponent(a.labels.app) }, 'logs')) : ''),
            h('td', { class: 'num' }, value(a.value)),
            h('td', {}, ago(a.starts_at)),
            h('td', {}, (a.annotations || {}).summary || ''),
            h('td', {}, h('button', { class: 'small', type: 'button', onclick: () => silenceFor(a) }, 'Silence…'))));
        }
        alertsTable.dataset.state = 'ready';
        rulesBody.textContent = '';
        if (!res.rules.length) rulesBody.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No rules: start drover up with --rules DIR (see alertman/README.md).')));
        for (const x of res.rules) {
          const st = x.health ? x.health.state : 'unknown';
          rulesBody.append(h('tr', { dataset: { rule: x.name, health: st } },
            h('td', {}, h('a', { href: '#/alerts?rule=' + encodeURIComponent(x.name) }, x.name), h('br'), h('small', { class: 'muted' }, `${x.kind} · ${x.severity}`)),
            h('td', {}, h('code', {}, x.expr), x.action ? h('div', {}, h('small', { class: 'muted' }, `action: ${x.action.type}${x.action.dry_run ? ' (dry run)' : ''}`)) : ''),
            h('td', {}, dur(x.for_s), x.keep_firing_for_s ? h('small', { class: 'muted' }, ` · keeps ${dur(x.keep_firing_for_s)}`) : ''),
            h('td', {}, h('span', { class: 'badge ' + ({ firing: 'error', pending: 'warning', error: 'error', nodata: 'warning', inactive: 'ok' }[st] || '') }, st),
              x.health && x.health.last_error ? h('div', {}, h('small', { class: 'muted' }, x.health.last_error)) : ''),
            h('td', {}, x.health && x.health.last_eval ? ago(x.health.last_eval) + ' ago' : '–'),
            h('td', {}, (x.receivers || []).join(', '))));
        }
        silencesBody.textContent = '';
        if (!res.silences.length) silencesBody.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No silences.')));
        for (const s of res.silences) {
          const m = s.matchers.map(m => `${m.name}${m.isEqual ? '' : '!'}${m.isRegex ? '=~' : '='}"${m.value}"`).join(', ');
          silencesBody.append(h('tr', { dataset: { silence: s.id, state: s.status.state } },
            h('td', {}, h('span', { class: 'badge ' + (s.status.state === 'active' ? 'ok' : '') }, s.status.state)),
            h('td', {}, h('code', {}, m)),
            h('td', {}, fmtTs(s.endsAt)),
            h('td', {}, s.createdBy),
            h('td', {}, s.comment),
            h('td', {}, s.status.state === 'expired' ? '' : h('button', { class: 'small danger', type: 'button', onclick: () => expire(s) }, 'Expire'))));
        }
        silencesTable.dataset.state = 'ready';
        reload.hidden = res.reload.ok;
        reload.textContent = res.reload.ok ? '' : 'The last rule reload was refused; the running rules stay in force:\n' + res.reload.error;
        showError(null);
      } catch (e) { showError(e.message); }
    }

    async function loadHistory() {
      try {
        const p = new URLSearchParams({ since: '24h', limit: '200' });
        if (stateFilter.value) p.set('kind', stateFilter.value);
        if (ruleFilter) p.set('rule', ruleFilter);
        const res = await api('/api/alerts/history?' + p);
        timeline.textContent = '';
        if (!res.entries.length) timeline.append(h('div', { class: 'empty' }, 'Nothing happened in the last 24 hours.'));
        for (const e of res.entries) {
          const cls = { firing: 'error', failed: 'error', error: 'error', pending: 'warning', nodata: 'warning', refused: 'warning', suspect_monitoring: 'error', resolved: 'ok', sent: 'ok', done: 'info', dry_run: 'info' }[e.state] || '';
          timeline.append(h('div', { class: 'ev', dataset: { kind: e.kind, state: e.state } },
            h('span', { class: 'muted' }, fmtTs(e.ts)),
            h('span', {}, h('span', { class: 'badge ' + cls }, e.state), ' ', h('small', { class: 'muted' }, e.kind)),
            h('span', {}, e.message)));
        }
        timeline.dataset.state = 'ready';
      } catch (e) { showError(e.message); }
    }

    async function expire(s) {
      const ok = await dialog('Expire this silence?', h('p', {}, 'Its alerts are notified again at their next group interval.'), 'Expire', true);
      if (!ok) return;
      try { await api('/api/v2/silence/' + encodeURIComponent(s.id), { method: 'DELETE' }); await load(); await loadHistory(); } catch (e) { showError(e.message); }
    }

    silenceForm.addEventListener('submit', async ev => {
      ev.preventDefault();
      const m = matchersIn.value.match(/([A-Za-z_][\w.]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^,\s]+)/g) || [];
      const matchers = m.map(x => {
        const [, name, op, raw] = x.match(/([A-Za-z_][\w.]*)\s*(=~|!~|!=|=)\s*(.*)/);
        const value = raw.startsWith('"') ? JSON.parse(raw) : raw;
        return { name, value, isRegex: op.includes('~'), isEqual: !op.startsWith('!') };
      });
      const mins = (() => { const x = forIn.value.match(/^(\d+)\s*([mhd])$/); return x ? Number(x[1]) * { m: 1, h: 60, d: 1440 }[x[2]] : NaN; })();
      if (!matchers.length) { showError('Matchers: write name="value", separated by commas (e.g. alertname="HighCpu", app="/shop").'); return; }
      if (!mins) { showError('For: a duration such as 30m, 2h or 1d.'); return; }
      const now = new Date();
      try {
        await api('/api/v2/silences', { method: 'POST', body: JSON.stringify({ matchers, startsAt: now.toISOString(), endsAt: new Date(now.getTime() + mins * 60e3).toISOString(), createdBy: byIn.value, comment: commentIn.value }) });
        matchersIn.value = ''; commentIn.value = '';
        await load(); await loadHistory();
      } catch (e) { showError(e.message); }
    });
    stateFilter.addEventListener('change', loadHistory);
    await Promise.all([load(), loadHistory()]);
    every(3000, load);
    every(5000, loadHistory);
  } };
})();
