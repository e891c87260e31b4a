/**
 * A truncated copy of a model as a GGUF draft model: its first K+1 blocks, the token embedding, the final norm, and
 * the early-exit head of block K as the output matrix. It computes exactly what self-drafting from block K computes
 * (the partial-depth decode and the head), but as an ordinary llama.cpp model: the fallback where a partial-depth
 * decode does not stop early (a graph split over several devices), and the way to draft on a GPU, where the whole
 * draft, head included, then runs on the device. It costs a second copy of those blocks' weights.
 */
import { GgufFile } from '../../formats/gguf/reader.js';
import { GgufWriter } from '../../formats/gguf/writer.js';
import type { TensorType } from '../../formats/gguf/encode.js';
import { InvalidInputError } from '../../util/errors.js';
import type { EarlyExitHeads } from './heads.js';

export interface DraftModelOptions {
  /** Encoding of the head matrix (the copied blocks keep theirs). Default: that of the model's output matrix, else f16. */
  headType?: TensorType;
}

/** Write the draft model of `heads`' head on `layer` for the model at `modelPath` to `out`. */
export function writeDraftModel(modelPath: string, heads: EarlyExitHeads, layer: number, out: string, o: DraftModelOptions = {}): void {
  const matrix = heads.matrices.get(layer);
  if (!matrix) throw new InvalidInputError(`no head on block ${layer} (heads: ${heads.layers.join(', ')})`);
  const src = GgufFile.open(modelPath);
  try {
    const arch = src.getString('general.architecture');
    if (!arch) throw new InvalidInputError(`${modelPath} has no general.architecture`);
    const w = new GgufWriter();
    for (const [key, e] of src.metadata) if (key !== 'general.alignment') w.set(key, e.value, e.type);
    w.set(`${arch}.block_count`, layer + 1, 'u32');
    w.set('general.name', `${src.getString('general.name') ?? 'model'} draft (blocks 0-${layer}, early-exit head)`);
    const output = src.tensorInfo('output.weight') ?? src.tensorInfo('token_embd.weight')!;
    const headType: TensorType = o.headType ?? (output.type && output.type !== 'bf16' ? output.type : 'f16');
    const keep = (name: string) => {
      const m = /^blk\.(\d+)\./.exec(name);
      return m ? Number(m[1]) <= layer : name !== 'output.weight';
    };
    for (const t of src.tensors) {
      if (!keep(t.name)) continue;
      if (!t.type) throw new InvalidInputError(`${modelPath}: tensor ${t.name} has a type this writer cannot copy (ggml type ${t.typeId})`);
      w.addTensor(t.name, [...t.dims], () => src.tensor(t.name), t.type);
    }
    w.addTensor('output.weight', [heads.model.nEmbd, heads.model.nVocab], matrix, headType);
    w.write(out);
  } finally {
    src.close();
  }
}
