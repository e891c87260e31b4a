/** Server-sent events on a raw Node response: `data:` lines, `: keep-alive` comments on a quiet stream, `[DONE]`. */
import type { ServerResponse } from 'node:http';

export class SseStream {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly res: ServerResponse,
    keepAliveMs: number,
  ) {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    if (keepAliveMs > 0) {
      this.timer = setInterval(() => this.write(': keep-alive\n\n'), keepAliveMs);
      this.timer.unref();
    }
  }

  send(data: unknown): void {
    this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** End the stream with the `[DONE]` sentinel (OpenAI's clients stop reading there). */
  done(): void {
    this.write('data: [DONE]\n\n');
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.res.end();
  }

  private write(text: string): void {
    if (this.closed || this.res.destroyed) return;
    this.res.write(text);
  }
}
