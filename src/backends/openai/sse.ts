/** Server-sent events read from a fetch body: each event's `data`, as text (`[DONE]` included). */

/** Split a byte stream into SSE events and yield their `data` fields (multi-line data joined by newlines). */
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string, void, void> {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let data: string[] = [];
  const flush = function* () {
    if (data.length > 0) yield data.join('\n');
    data = [];
  };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(buffer[nl] === '\r' ? nl + 2 : nl + 1);
      if (line === '') yield* flush();
      else if (line.startsWith('data:')) data.push(line.slice(line[5] === ' ' ? 6 : 5));
      // Comments (`: keep-alive`), `event:`, `id:` and `retry:` lines carry nothing a completion needs.
    }
  }
  buffer += decoder.decode();
  if (buffer.startsWith('data:')) data.push(buffer.slice(buffer[5] === ' ' ? 6 : 5));
  yield* flush();
}
