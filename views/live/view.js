/*
 * Live Mode sidebar view. Runs in the dashboard's sandboxed iframe (opaque origin: no
 * microphone, no localStorage, no popups), so it only shows status and where the Live page is.
 * Data comes from the plugin's `live/status` web API through window.AstrBotPluginView.apiGet.
 */
(function () {
  'use strict';

  var STRINGS = {
    en: {
      title: 'Live Mode',
      subtitle: 'Talk to your AstrBot character with your voice.',
      'open.title': 'Open Live Mode',
      'open.body':
        'Live Mode runs on its own page, because this panel cannot use the microphone. Open this address in a new browser tab:',
      'open.copy': 'Copy',
      'open.copied': 'Copied',
      'open.copyFailed': 'Press Ctrl+C',
      'open.link': 'Open in a new tab',
      'open.linkNote': '(if nothing happens, paste the address into a new tab)',
      'tls.title': 'The microphone needs HTTPS here.',
      'tls.body':
        'Browsers only allow microphones on https:// pages and on localhost. Enable HTTPS for the dashboard (dashboard.ssl in cmd_config.json, or DASHBOARD_SSL_ENABLE / DASHBOARD_SSL_CERT / DASHBOARD_SSL_KEY), or use an HTTPS reverse proxy. Typing still works without it.',
      'status.title': 'Status',
      'status.loading': 'Loading…',
      'status.running': 'Running',
      'status.unavailable': 'Unavailable',
      'status.noBridge': 'Open this view from the AstrBot dashboard to see the status.',
      'status.failed': 'Could not load the status: ',
      'field.version': 'Plugin version',
      'field.sessions': 'Active sessions',
      'field.stt': 'Speech to text',
      'field.tts': 'Text to speech',
      'field.vad': 'End-of-speech detection',
      'field.busy': 'Answering now',
      'field.vadLag': 'VAD lag (p99)',
      'field.protocol': 'Protocol version',
      'value.none': 'not configured',
      'value.serverVad': 'on the server',
      'value.clientVad': 'in the browser',
      footer: 'Tip: the /live command in a WebChat conversation gives a link that continues that conversation by voice.',
    },
    zh: {
      title: '实时对话',
      subtitle: '用语音和你的 AstrBot 角色交谈。',
      'open.title': '打开实时对话',
      'open.body': '实时对话在独立页面中运行，因为此面板无法使用麦克风。请在新的浏览器标签页中打开此地址：',
      'open.copy': '复制',
      'open.copied': '已复制',
      'open.copyFailed': '请按 Ctrl+C',
      'open.link': '在新标签页中打开',
      'open.linkNote': '（若没有反应，请将地址粘贴到新标签页）',
      'tls.title': '此处使用麦克风需要 HTTPS。',
      'tls.body':
        '浏览器只允许 https:// 页面和 localhost 使用麦克风。请为面板启用 HTTPS（cmd_config.json 中的 dashboard.ssl，或 DASHBOARD_SSL_ENABLE / DASHBOARD_SSL_CERT / DASHBOARD_SSL_KEY），或使用 HTTPS 反向代理。没有 HTTPS 时仍可打字聊天。',
      'status.title': '状态',
      'status.loading': '加载中…',
      'status.running': '运行中',
      'status.unavailable': '不可用',
      'status.noBridge': '请在 AstrBot 面板中打开此视图以查看状态。',
      'status.failed': '无法加载状态：',
      'field.version': '插件版本',
      'field.sessions': '活动会话',
      'field.stt': '语音识别',
      'field.tts': '语音合成',
      'field.vad': '说话结束检测',
      'field.busy': '正在回答',
      'field.vadLag': 'VAD 延迟（p99）',
      'field.protocol': '协议版本',
      'value.none': '未配置',
      'value.serverVad': '在服务器端',
      'value.clientVad': '在浏览器端',
      footer: '提示：在 WebChat 对话中使用 /live 指令，会得到一个以语音继续该对话的链接。',
    },
  };

  var bridge = window.AstrBotPluginView || null;
  var lang = 'en';
  var pagePath = '/live/';

  function t(key) {
    return (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.en[key] || key;
  }

  function applyLocale(locale) {
    lang = String(locale || navigator.language || 'en').toLowerCase().indexOf('zh') === 0 ? 'zh' : 'en';
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach(function (el) {
      el.textContent = t(el.getAttribute('data-i18n'));
    });
  }

  /** The dashboard origin and any reverse-proxy prefix, from this view's own URL. */
  function liveUrl() {
    var path = location.pathname;
    var cut = path.indexOf('/api/v1/plugins/');
    var prefix = cut >= 0 ? path.slice(0, cut) : '';
    return location.protocol + '//' + location.host + prefix + pagePath;
  }

  function isLocalHost(host) {
    return host === 'localhost' || host === '[::1]' || /^127\./.test(host) || /\.localhost$/.test(host);
  }

  function renderUrl() {
    var url = liveUrl();
    document.getElementById('page-url').value = url;
    document.getElementById('page-link').href = url;
    document.getElementById('tls-warning').hidden = location.protocol === 'https:' || isLocalHost(location.hostname);
  }

  function copyUrl() {
    var input = document.getElementById('page-url');
    var button = document.getElementById('copy');
    var done = function (ok) {
      button.textContent = t(ok ? 'open.copied' : 'open.copyFailed');
      setTimeout(function () {
        button.textContent = t('open.copy');
      }, 1800);
    };
    input.focus();
    input.select();
    var legacy = function () {
      var ok = false;
      try {
        ok = document.execCommand('copy');
      } catch (e) {
        ok = false;
      }
      done(ok);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(input.value).then(function () { done(true); }, legacy);
    } else {
      legacy();
    }
  }

  function setState(text, cls) {
    var el = document.getElementById('state');
    el.textContent = text;
    el.className = 'chip' + (cls ? ' ' + cls : '');
  }

  function showError(text) {
    var el = document.getElementById('error');
    el.textContent = text;
    el.hidden = !text;
  }

  function row(list, label, value) {
    var dt = document.createElement('dt');
    dt.textContent = label;
    var dd = document.createElement('dd');
    dd.textContent = value;
    list.appendChild(dt);
    list.appendChild(dd);
  }

  function renderStatus(data) {
    var list = document.getElementById('status');
    list.textContent = '';
    if (data.page_url) pagePath = String(data.page_url);
    renderUrl();
    var version = document.getElementById('version');
    version.hidden = !data.version;
    version.textContent = data.version ? 'v' + String(data.version).replace(/^v/, '') : '';
    row(list, t('field.sessions'), String(data.sessions != null ? data.sessions : 0));
    row(list, t('field.stt'), data.stt_provider || t('value.none'));
    row(list, t('field.tts'), data.tts_provider || t('value.none'));
    row(list, t('field.vad'), data.server_vad === false ? t('value.clientVad') : t('value.serverVad'));
    if (data.busy != null) row(list, t('field.busy'), String(data.busy));
    if (data.vad_lag_p99_ms != null) row(list, t('field.vadLag'), data.vad_lag_p99_ms + ' ms');
    if (data.protocol_version != null) row(list, t('field.protocol'), String(data.protocol_version));
    var settings = data.settings && typeof data.settings === 'object' ? data.settings : {};
    Object.keys(settings).forEach(function (key) {
      var v = settings[key];
      row(list, key, typeof v === 'object' ? JSON.stringify(v) : String(v));
    });
    setState(t('status.running'), 'ok');
    showError('');
  }

  function refresh() {
    if (!bridge) {
      setState(t('status.unavailable'), 'bad');
      showError(t('status.noBridge'));
      return;
    }
    bridge.apiGet('live/status').then(
      function (res) {
        // The bridge unwraps {"data": ...}; accept a still-wrapped {"ok", "data"} too.
        var data = res && res.ok !== undefined && res.data ? res.data : res;
        renderStatus(data || {});
      },
      function (err) {
        setState(t('status.unavailable'), 'bad');
        showError(t('status.failed') + (err && err.message ? err.message : String(err)));
      }
    );
  }

  function start() {
    applyLocale(bridge && bridge.getLocale ? bridge.getLocale() : null);
    renderUrl();
    setState(t('status.loading'));
    document.getElementById('copy').addEventListener('click', copyUrl);
    refresh();
    setInterval(function () {
      if (!document.hidden) refresh();
    }, 10000);
    if (bridge && bridge.onContext) {
      bridge.onContext(function (ctx) {
        if (ctx && ctx.locale) applyLocale(ctx.locale);
      });
    }
  }

  if (!bridge) {
    start();
    return;
  }
  // Wait for the dashboard's context (locale, theme), but not forever.
  var started = false;
  var go = function () {
    if (!started) {
      started = true;
      start();
    }
  };
  bridge.ready().then(go, go);
  setTimeout(go, 1500);
})();
