/**
 * One streamed continuation of a token-id prompt, as a sequence of sampled tokens that survives the server's faults.
 *
 * A request that fails before it streams is sent again after a backoff. A stream that breaks (a dropped connection, a
 * 5xx mid-stream, no data for the idle timeout) is *replayed*: the same request again (same prompt, same seed), its
 * first tokens checked against those already delivered and skipped, so a deterministic server (lynx serve, llama.cpp
 * with a seed) gives exactly the tokens an unbroken stream would have, and the trace equals the local engine's. A
 * server that samples other tokens the second time (vLLM batches differently under load) is noticed at the first
 * difference; the stream then continues from the tokens kept, as a new request with a seed derived from the first
 * (counted in `stats.divergences`).
 */
import type { SamplerOptions } from '../../engine/index.js';
import { Rng } from '../../util/rng.js';
import type { ChunkToken } from './dialect.js';
import { LynxError } from '../../util/errors.js';
import { RemoteServerError } from './errors.js';
import type { RequestFamily } from './inflight.js';
import type { RemoteServer } from './remote.js';
import { TransientFailure } from './retry.js';
import { sseData } from './sse.js';

export interface StreamRequest {
  prompt: readonly number[];
  maxTokens: number;
  sampler: SamplerOptions;
  logprobs?: number;
  ignoreEos: boolean;
}

export type StreamEvent = { kind: 'token'; token: ChunkToken } | { kind: 'end'; finish: string };

/** The replayed stream sampled something else than the first try. */
class Diverged extends Error {}

export async function* completionStream(server: RemoteServer, req: StreamRequest, family: RequestFamily, signal?: AbortSignal): AsyncGenerator<StreamEvent, void, void> {
  const delivered: number[] = [];
  // The request now being sent, and how many tokens had been delivered when it started.
  let current = { prompt: req.prompt, maxTokens: req.maxTokens, seed: req.sampler.seed ?? 0, start: 0 };
  let failures = 0;
  for (;;) {
    const skip = delivered.length - current.start;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const idle = server.retry.idleTimeoutMs;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new TransientFailure(`no data from ${server.url} for ${idle / 1000} s`)), idle);
    };
    let entered = false;
    let progressed = false;
    try {
      await server.limit.enter(family, signal);
      entered = true;
      server.stats.requests++;
      arm();
      const body = server.dialect.body({ model: server.model, prompt: current.prompt, maxTokens: current.maxTokens, sampler: { ...req.sampler, seed: current.seed }, logprobs: req.logprobs, ignoreEos: req.ignoreEos });
      const res = await server.fetch('POST', server.dialect.path, body, controller.signal);
      if (!res.body) throw new TransientFailure(`${server.url} answered with no body`);
      let seen = 0;
      let withheld = false;
      const held: ChunkToken[] = [];
      const take = (t: ChunkToken): ChunkToken | undefined => {
        if (seen < skip) {
          if (t.id !== delivered[current.start + seen]) throw new Diverged();
          seen++;
          return undefined;
        }
        seen++;
        delivered.push(t.id);
        progressed = true;
        server.stats.tokens++;
        return t;
      };
      for await (const data of sseData(res.body)) {
        arm();
        if (data === '[DONE]') break;
        let json: unknown;
        try {
          json = JSON.parse(data);
        } catch {
          throw new TransientFailure(`${server.url} sent a chunk that is not JSON: ${data.slice(0, 80)}`);
        }
        const chunk = server.dialect.parse(json, server.pieces);
        // llama.cpp holds back a token that ends inside a UTF-8 character but counts it: from then on, wait for the
        // full id list of the last chunk rather than yield tokens out of order.
        if (chunk.generated !== undefined && chunk.generated > seen + chunk.tokens.length) withheld = true;
        if (!withheld) {
          for (const t of chunk.tokens) {
            const x = take(t);
            if (x) yield { kind: 'token', token: x };
          }
        } else {
          held.push(...chunk.tokens);
        }
        if (chunk.finish !== undefined) {
          if (withheld) {
            if (!chunk.allTokens) throw new RemoteServerError(`${server.url} withheld tokens and did not list them at the end`);
            // The tokens sent while some were withheld keep their log-probabilities; the withheld ones have none.
            let h = 0;
            for (const id of chunk.allTokens.slice(seen)) {
              const j = held.findIndex((t, k) => k >= h && t.id === id);
              if (j >= 0) h = j + 1;
              const x = take(j >= 0 ? held[j]! : { id });
              if (x) yield { kind: 'token', token: x };
            }
          }
          if (seen < skip) throw new Diverged();
          yield { kind: 'end', finish: chunk.finish };
          return;
        }
      }
      throw new TransientFailure(`the stream from ${server.url} ended before the completion finished`);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if (e instanceof Diverged) {
        server.stats.divergences++;
        current = {
          prompt: [...req.prompt, ...delivered],
          maxTokens: req.maxTokens - delivered.length,
          seed: Rng.derive(req.sampler.seed ?? 0, `continue:${delivered.length}`).nextU32(),
          start: delivered.length,
        };
        if (current.maxTokens <= 0) {
          yield { kind: 'end', finish: 'length' };
          return;
        }
        continue;
      }
      const failure = controller.signal.reason instanceof TransientFailure ? controller.signal.reason : brokenStream(e, server.url);
      if (!(failure instanceof TransientFailure)) throw failure;
      failures = progressed ? 1 : failures + 1;
      if (failures > server.retry.retries) throw new RemoteServerError(`${failure.message} (${failures} tries in a row failed)`, undefined, { cause: failure });
      await server.backoff(failure, failures, signal);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // Closes the connection of a stream left early (an exit, a stop): the server stops generating for it.
      controller.abort(new Error('stream closed'));
      if (entered) server.limit.leave(family);
    }
  }
}

/** A connection that breaks while the body streams (undici's `terminated`, a reset socket) as a failure worth a retry. */
function brokenStream(e: unknown, url: string): unknown {
  if (e instanceof LynxError || e instanceof TransientFailure || !(e instanceof Error)) return e;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return new TransientFailure(`the stream from ${url} broke: ${cause?.code ?? cause?.message ?? e.message}`, undefined, { cause: e });
}
