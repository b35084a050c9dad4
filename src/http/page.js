(function () {
  'use strict';
  var d = document;
  var sort = { key: 'count', num: true, dir: -1 };
  d.documentElement.setAttribute('data-js', 'ready');

  function value(row, key) {
    var v = row.getAttribute('data-' + key) || '';
    return sort.num ? Number(v) : v.toLowerCase();
  }

  // Sorts and filters the listed groups; the server lists them busiest first.
  function apply() {
    var body = d.getElementById('fp-body');
    var form = d.getElementById('fp-filter');
    if (!body || !form) return;
    var level = form.elements.level.value;
    var service = form.elements.service.value.trim().toLowerCase();
    var run = form.elements.run.value.trim().toLowerCase();
    var rows = Array.prototype.slice.call(body.querySelectorAll('tr[data-count]'));
    rows.sort(function (a, b) {
      var x = value(a, sort.key), y = value(b, sort.key);
      return (x < y ? -1 : x > y ? 1 : 0) * sort.dir;
    });
    var shown = 0;
    rows.forEach(function (r) {
      var ok = (!level || r.getAttribute('data-level') === level) &&
        (!service || (r.getAttribute('data-service') || '').toLowerCase().indexOf(service) >= 0) &&
        (!run || (r.getAttribute('data-run') || '').toLowerCase().indexOf(run) >= 0);
      r.hidden = !ok;
      if (ok) shown++;
      body.appendChild(r);
    });
    var count = d.getElementById('fp-shown');
    if (count) count.textContent = String(shown);
    d.querySelectorAll('th[data-sort]').forEach(function (th) {
      th.setAttribute('aria-sort', th.getAttribute('data-sort') === sort.key
        ? (sort.dir < 0 ? 'descending' : 'ascending') : 'none');
    });
  }

  d.addEventListener('click', function (e) {
    var th = e.target.closest('th[data-sort]');
    if (!th) return;
    var key = th.getAttribute('data-sort');
    if (key === sort.key) {
      sort.dir = -sort.dir;
    } else {
      sort.key = key;
      sort.num = th.getAttribute('data-type') === 'num';
      sort.dir = sort.num ? -1 : 1;
    }
    apply();
  });
  d.addEventListener('input', function (e) {
    if (e.target.form && e.target.form.id === 'fp-filter') apply();
  });
  d.addEventListener('submit', function (e) {
    if (e.target.id === 'fp-filter') { e.preventDefault(); apply(); }
  });

  // Every few seconds: fetch the page again and swap in the parts marked data-live, so that
  // filters, sorting and half-typed forms stay as they are.
  function refresh() {
    if (d.hidden) return;
    fetch(location.pathname + location.search, { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, 'text/html');
        d.querySelectorAll('[data-live]').forEach(function (old) {
          var now = fresh.getElementById(old.id);
          if (now) old.replaceWith(d.adoptNode(now));
        });
        apply();
      })
      .catch(function () {});
  }
  setInterval(refresh, 5000);
  apply();
})();
