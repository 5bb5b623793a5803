// The live tail over fetch (EventSource cannot send the Authorization header): a reader of
// Server-Sent Events and a client that reconnects with Last-Event-ID, so that a dropped
// connection, a `lagged` end or the server's stream age limit lose no row and repeat none.

import { authHeaders, query, refusal } from "./api.js";

// Splits a text/event-stream into events: {event, id, data}; comments (heartbeats) are
// dropped. Yields as blocks complete, keeping a partial block for the next chunk.
export async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        return;
      }
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseBlock(block);
        if (event) {
          yield event;
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseBlock(block) {
  const event = { event: "message", id: null, data: [] };
  let fields = 0;
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) {
      continue;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    fields += 1;
    if (name === "event") event.event = value;
    else if (name === "id") event.id = value;
    else if (name === "data") event.data.push(value);
  }
  if (fields === 0) {
    return null;
  }
  return { event: event.event, id: event.id, data: event.data.join("\n") };
}

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15000;
// Refusals worth retrying: the connection limits (another tab may close) and overload.
const RETRYABLE = new Set([429, 500, 502, 503, 504]);

export class LiveTail {
  // `onRow(log, cursor)` for each row; `onState(state, detail)` with "connecting", "live",
  // "reconnecting", "stopped" or "failed".
  constructor(session, filters, { onRow, onState }) {
    this.session = session;
    this.path = session.admin ? "/api/log/tail" : "/api/log/self/tail";
    this.filters = filters;
    this.onRow = onRow;
    this.onState = onState;
    this.lastEventId = null;
    this.controller = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.run();
  }

  stop() {
    this.stopped = true;
    if (this.controller) {
      this.controller.abort();
    }
    this.onState("stopped", "");
  }

  async run() {
    let retryMs = RETRY_FIRST_MS;
    this.onState("connecting", "");
    while (!this.stopped) {
      this.controller = new AbortController();
      let detail = "the connection ended";
      try {
        const extra = this.lastEventId ? { "Last-Event-ID": this.lastEventId } : {};
        const response = await fetch(`${this.path}${query(this.filters)}`, {
          headers: authHeaders(this.session, { Accept: "text/event-stream", ...extra }),
          cache: "no-store",
          signal: this.controller.signal,
        });
        if (!response.ok) {
          const error = await refusal(response);
          if (!RETRYABLE.has(response.status)) {
            this.stopped = true;
            this.onState("failed", error.message);
            return;
          }
          detail = error.message;
        } else {
          this.onState("live", "");
          retryMs = RETRY_FIRST_MS;
          for await (const event of serverSentEvents(response.body)) {
            if (event.event === "lagged") {
              // The server ended a stream that fell behind: resume at once from the cursor.
              detail = "caught up after falling behind";
              retryMs = 0;
              break;
            }
            if (event.event === "message" && event.id) {
              this.lastEventId = event.id;
              this.onRow(JSON.parse(event.data), event.id);
            }
          }
        }
      } catch (error) {
        if (this.stopped) {
          return;
        }
        detail = error.message || String(error);
      }
      if (this.stopped) {
        return;
      }
      this.onState("reconnecting", detail);
      await new Promise((resolve) => setTimeout(resolve, retryMs));
      retryMs = Math.min(Math.max(retryMs * 2, RETRY_FIRST_MS), RETRY_MAX_MS);
    }
  }
}
