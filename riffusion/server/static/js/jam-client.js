// The jam WebSocket (/api/jam, docs/api.md): sends prompts, settings and what has played; turns
// the server's messages into events. Reconnects on its own when the connection drops mid-jam.
//
// Events: "clip", "status", "error" (detail: the server's message), "connection" (detail:
// "connecting" | "open" | "closed"), "restart" (a reconnect restarted the jam from index 0).

export class JamClient extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.socket = null;
    this.outbox = []; // messages sent while connecting go out once the socket opens
    this.wanted = false; // whether the user has a jam going (so drops are worth a reconnect)
    this.retries = 0;
    this.lastStart = null;
  }

  connect() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    this.emit("connection", "connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.retries = 0;
      this.emit("connection", "open");
      for (const message of this.outbox.splice(0)) socket.send(message);
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.emit("connection", "closed");
      if (this.wanted) this.reconnectLater();
    });
  }

  reconnectLater() {
    // Back off 1, 2, 4 ... up to 15 s: a restarting server should not be hammered.
    const delay = Math.min(15000, 1000 * 2 ** this.retries);
    this.retries += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.wanted) return;
      this.connect();
      // The server's jam state went with the old connection: start again where we were.
      if (this.lastStart) {
        this.send(this.lastStart());
        this.emit("restart");
      }
    }, delay);
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message && typeof message.type === "string") this.emit(message.type, message);
  }

  send(message) {
    const text = JSON.stringify(message);
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(text);
    else {
      this.outbox.push(text);
      this.connect();
    }
  }

  /**
   * Start a jam. restartMessage: () => the "start" message to send after a reconnect (so it
   * carries the prompt and seed the music had reached, not the ones it began with).
   */
  start(prompt, settings, restartMessage = null) {
    this.wanted = true;
    const message = { type: "start", prompt, settings };
    this.lastStart = restartMessage || (() => message);
    this.send(message);
  }

  prompt(prompt) {
    this.send({ type: "prompt", prompt });
  }

  settings(settings) {
    this.send({ type: "settings", settings });
  }

  played(index) {
    this.send({ type: "played", index });
  }

  pause() {
    this.send({ type: "pause" });
  }

  resume() {
    this.send({ type: "resume" });
  }

  close() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close();
    this.socket = null;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
