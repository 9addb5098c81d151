// Drover's Jobs page: every job with its schedule, next run and last outcome, a button to
// run it now and one to enable or disable it; a job's run history (#/jobs/ID) with each
// run's attempts, exit codes, nodes and a link to its logs. Registered on
// window.DroverPages; app.js gives the helpers.
'use strict';
(function () {
  window.DroverPages = window.DroverPages || {};

  const stateClass = s => ({ SUCCEEDED: 'ok', RUNNING: 'info', STARTING: 'warning', PENDING: 'warning', FAILED: 'error', SKIPPED: '' }[s] || '');

  window.DroverPages.jobs = { needs: 'scheduler', render: async function renderJobs(r) {
    const { h, api, showError, every, fmtTs, ago, view } = window.DroverUI;
    const id = r.rest.join('/');
    const outcome = run => !run ? '–' : [h('span', { class: 'badge ' + stateClass(run.state) }, run.state),
      run.exitCode != null ? h('small', { class: 'muted' }, ` exit ${run.exitCode}`) : ''];
    const until = iso => { const s = Math.max(0, (Date.parse(iso) - Date.now()) / 1000); return s < 90 ? Math.round(s) + 's' : s < 5400 ? Math.round(s / 60) + 'm' : s < 172800 ? (s / 3600).toFixed(1) + 'h' : Math.round(s / 86400) + 'd'; };
    const when = j => j.parents ? 'after ' + j.parents.join(', ') : (j.schedule || '') + (j.timezone ? ` (${j.timezone})` : '');

    async function runNow(jobId) {
      try { const run = await api('/v1/jobs/' + encodeURIComponent(jobId) + '/run', { method: 'POST' }); showError(null); await load(); return run; } catch (e) { showError(e.message); }
    }
    async function toggle(j) {
      try { await api('/v1/jobs/' + encodeURIComponent(j.id) + (j.enabled ? '/disable' : '/enable'), { method: 'POST' }); await load(); } catch (e) { showError(e.message); }
    }

    if (!id) {
      const body = h('tbody');
      const table = h('table', { id: 'jobs' }, h('thead', {}, h('tr', {},
        h('th', {}, 'Job'), h('th', {}, 'Schedule'), h('th', {}, 'Next run'), h('th', {}, 'Last outcome'),
        h('th', { class: 'num' }, 'Running'), h('th', {}, ''))), body);
      view.replaceChildren(h('h2', {}, 'Jobs'), h('div', { class: 'panel' }, table),
        h('p', { class: 'muted' }, 'Add jobs with drover job add FILE (see drover job add --help) or POST /v1/jobs.'));
      var load = async function () {
        try {
          const res = await api('/v1/jobs');
          body.textContent = '';
          if (!res.jobs.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No jobs yet.')));
          for (const j of res.jobs) {
            body.append(h('tr', { dataset: { job: j.id, enabled: String(j.enabled) } },
              h('td', {}, h('a', { href: '#/jobs/' + encodeURIComponent(j.id) }, h('b', {}, j.id)), j.description ? h('div', {}, h('small', { class: 'muted' }, j.description)) : ''),
              h('td', {}, h('code', {}, when(j)), j.enabled ? '' : h('span', { class: 'badge' }, ' disabled')),
              h('td', { class: 'next-run' }, j.enabled && j.nextRun ? [fmtTs(j.nextRun), h('br'), h('small', { class: 'muted' }, 'in ' + until(j.nextRun))] : '–'),
              h('td', { class: 'last' }, outcome(j.lastRun), j.lastRun && j.lastRun.endedAt ? h('div', {}, h('small', { class: 'muted' }, ago(j.lastRun.endedAt) + ' ago')) : ''),
              h('td', { class: 'num' }, String(j.activeRuns)),
              h('td', {}, h('button', { class: 'small primary run-now', type: 'button', onclick: () => runNow(j.id) }, 'Run now'), ' ',
                h('button', { class: 'small', type: 'button', onclick: () => toggle(j) }, j.enabled ? 'Disable' : 'Enable'))));
          }
          table.dataset.state = 'ready';
          showError(null);
        } catch (e) { showError(e.message); }
      };
      await load();
      every(2000, load);
      return;
    }

    // One job: its definition and its runs.
    const head = h('div', { class: 'panel', id: 'job' });
    const body = h('tbody');
    const table = h('table', { id: 'runs' }, h('thead', {}, h('tr', {},
      h('th', {}, 'Run'), h('th', {}, 'State'), h('th', {}, 'Trigger'), h('th', {}, 'Created'), h('th', {}, 'Ended'),
      h('th', { class: 'num' }, 'Attempts'), h('th', { class: 'num' }, 'Exit'), h('th', {}, 'Node'), h('th', {}, 'Reason'), h('th', {}, 'Logs'))), body);
    view.replaceChildren(h('h2', {}, h('a', { href: '#/jobs' }, 'Jobs'), ' / ' + id), head, h('div', { class: 'panel' }, h('h3', {}, 'Runs'), table));
    var load = async function () {
      try {
        const [j, res] = await Promise.all([api('/v1/jobs/' + encodeURIComponent(id)), api('/v1/jobs/' + encodeURIComponent(id) + '/runs?limit=50')]);
        head.replaceChildren(
          h('div', { class: 'row' },
            h('code', {}, j.cmd || (j.args || []).join(' ') || '(the image\'s command)'), h('span', { class: 'muted' }, ' in ' + (j.image || 'the default image')),
            h('span', { class: 'spacer' }),
            h('button', { class: 'primary run-now', type: 'button', onclick: () => runNow(id) }, 'Run now'),
            h('button', { type: 'button', onclick: () => toggle(j) }, j.enabled ? 'Disable' : 'Enable')),
          h('p', {}, 'When: ', h('code', {}, when(j)), j.enabled ? '' : ' (disabled)', ' · next run: ', j.enabled && j.nextRun ? fmtTs(j.nextRun) : '–',
            ` · concurrency ${j.concurrencyPolicy} · ${j.retry.retries} retries · epsilon ${j.epsilonSeconds} s` + (j.timeoutSeconds ? ` · timeout ${j.timeoutSeconds} s` : ''),
            ` · skipped ${j.skipped} · `, h('a', { href: j.logs }, 'all logs')));
        body.textContent = '';
        if (!res.runs.length) body.append(h('tr', {}, h('td', { colspan: 10, class: 'empty' }, 'No runs yet.')));
        for (const run of res.runs) {
          body.append(h('tr', { dataset: { run: run.id, state: run.state } },
            h('td', {}, h('small', {}, run.id.split(':').slice(1).join(':'))),
            h('td', {}, h('span', { class: 'badge ' + stateClass(run.state) }, run.state)),
            h('td', {}, run.trigger, run.scheduledFor ? h('div', {}, h('small', { class: 'muted' }, 'for ' + fmtTs(run.scheduledFor))) : ''),
            h('td', {}, fmtTs(run.createdAt)),
            h('td', {}, run.endedAt ? fmtTs(run.endedAt) : '–'),
            h('td', { class: 'num' }, String(run.attempts.length)),
            h('td', { class: 'num' }, run.exitCode != null ? String(run.exitCode) : '–'),
            h('td', {}, run.node || '–'),
            h('td', {}, h('small', {}, run.reason || '')),
            h('td', {}, run.logs ? h('a', { href: run.logs, class: 'logs-link' }, 'logs') : '–')));
        }
        table.dataset.state = 'ready';
        showError(null);
      } catch (e) { showError(e.message); }
    };
    await load();
    every(2000, load);
  } };
})();
