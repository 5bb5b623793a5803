// Usage charts from the series endpoint (/api/log/stat/series, /api/log/self/stat/series),
// drawn with the vendored uPlot (vendor/uplot, MIT).

import { getData } from "./api.js";

const PALETTE = ["#2f6fde", "#e8793a", "#2e9d4f", "#c0362c", "#8e5bd6", "#1f9fb4", "#b58b00", "#d6589c"];
const TOP = 6;

function metricOf(point, metric) {
  if (metric === "tokens") {
    return point.prompt_tokens + point.completion_tokens;
  }
  return point[metric];
}

// A series' name from its key (only the grouped dimensions are present).
export function seriesLabel(series) {
  if (series.other) {
    return "other";
  }
  const key = series.key;
  const parts = [];
  if (key.model_name !== undefined) parts.push(key.model_name || "(no model)");
  if (key.user_id !== undefined) parts.push(key.username || `user ${key.user_id}`);
  if (key.token_id !== undefined) parts.push(key.token_name || `token ${key.token_id}`);
  if (key.channel !== undefined) parts.push(`channel ${key.channel}`);
  if (key.group !== undefined) parts.push(key.group || "(no group)");
  return parts.length ? parts.join(" / ") : "all";
}

// uPlot's columns: every bucket start of the range (buckets without logs are absent from the
// answer and drawn as zero), then one column per series.
export function columns(data, metric, stepSeconds) {
  const times = [];
  if (data.interval === "day") {
    // Day buckets are local midnights, not always 86400 s apart: take the ones answered.
    const seen = new Set();
    for (const series of data.series) for (const p of series.points) seen.add(p.t);
    times.push(...[...seen].sort((a, b) => a - b));
  } else {
    const first = Math.floor(data.start_timestamp / stepSeconds) * stepSeconds;
    for (let t = first; t <= data.end_timestamp; t += stepSeconds) times.push(t);
  }
  const index = new Map(times.map((t, i) => [t, i]));
  const values = data.series.map((series) => {
    const column = new Array(times.length).fill(0);
    for (const point of series.points) {
      const i = index.get(point.t);
      if (i !== undefined) column[i] = metricOf(point, metric);
    }
    return column;
  });
  return [times, ...values];
}

const STEP = { minute: 60, hour: 3600, day: 86400 };

export class UsageChart {
  constructor(container, totals) {
    this.container = container;
    this.totals = totals;
    this.plot = null;
  }

  async load(session, { seconds, interval, groupBy, metric }) {
    const now = Math.floor(Date.now() / 1000);
    const path = session.admin ? "/api/log/stat/series" : "/api/log/self/stat/series";
    const data = await getData(session, path, {
      start_timestamp: now - seconds,
      end_timestamp: now,
      interval,
      tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
      group_by: groupBy,
      top: groupBy ? TOP : "",
    });
    this.draw(data, metric);
    return data;
  }

  draw(data, metric) {
    let total = { requests: 0, quota: 0, prompt_tokens: 0, completion_tokens: 0 };
    for (const series of data.series) {
      for (const name of Object.keys(total)) total[name] += series.total[name];
    }
    this.totals.textContent =
      `${total.requests.toLocaleString()} requests · quota ${total.quota.toLocaleString()} · ` +
      `${(total.prompt_tokens + total.completion_tokens).toLocaleString()} tokens in range`;
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
    this.container.replaceChildren();
    if (data.series.length === 0) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "No usage in this range.";
      this.container.append(empty);
      return;
    }
    const series = [{}].concat(
      data.series.map((s, i) => ({
        label: seriesLabel(s),
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        points: { show: false },
      })),
    );
    const width = Math.max(320, this.container.clientWidth || 800);
    this.plot = new window.uPlot(
      { width, height: 260, series, scales: { x: { time: true } }, legend: { live: true } },
      columns(data, metric, STEP[data.interval]),
      this.container,
    );
  }
}
