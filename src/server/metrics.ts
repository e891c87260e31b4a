/** Prometheus metrics of `lynx serve` (GET /metrics), in a registry of the server's own. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'lynx_requests_total', help: 'Requests by endpoint and HTTP status', labelNames: ['endpoint', 'status'], registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'lynx_prompt_tokens_total', help: 'Prompt tokens prefilled', registers: [this.registry] });
  readonly completionTokens = new Counter({ name: 'lynx_completion_tokens_total', help: 'Completion tokens returned (reasoning, exit cue and answer)', registers: [this.registry] });
  readonly decodedTokens = new Counter({ name: 'lynx_decoded_tokens_total', help: 'Tokens decoded for completions, probes and trial answers included', registers: [this.registry] });
  readonly exits = new Counter({ name: 'lynx_early_exits_total', help: 'Completions that exited early, by method', labelNames: ['method'], registers: [this.registry] });
  readonly running = new Gauge({ name: 'lynx_requests_running', help: 'Requests decoding now', registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'lynx_queue_depth', help: 'Requests waiting for a slot', registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'lynx_time_to_first_token_seconds', help: 'Time from request to first streamed token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly itl = new Histogram({ name: 'lynx_inter_token_latency_seconds', help: 'Time between streamed tokens', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly duration = new Histogram({ name: 'lynx_request_duration_seconds', help: 'Request time, end to end', buckets: [...LATENCY_BUCKETS, 60, 120, 300], registers: [this.registry] });
}
