/**
 * Where the shipped demo model lives inside the package, laid out like an experiment folder so that every command
 * reads it as it reads a user's own experiment:
 *
 *   models/lynx-demo/model.gguf        the trained reasoner (tokenizer and chat template inside)
 *   models/lynx-demo/probe/            LYNX probe trained on its hidden states (probe.json + probe.safetensors)
 *   models/lynx-demo/conformal/        calibrated stop rules, one JSON per rule and δ
 *   models/lynx-demo/card.md           model card (training, loss curve, measured behaviour)
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LynxError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';

export interface ShippedDemo {
  root: string;
  model: string;
  probe: string;
  conformal: string;
  card: string;
}

export function shippedDemo(root = join(packageRoot(), 'models', 'lynx-demo')): ShippedDemo {
  return {
    root,
    model: join(root, 'model.gguf'),
    probe: join(root, 'probe'),
    conformal: join(root, 'conformal'),
    card: join(root, 'card.md'),
  };
}

/** The shipped demo, or a clear error naming what is missing (a broken install, or a checkout without models/). */
export function requireShippedDemo(root?: string): ShippedDemo {
  const d = shippedDemo(root);
  const missing = [d.model, join(d.probe, 'probe.json'), d.conformal].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new LynxError(`the shipped demo is incomplete: missing ${missing.join(', ')} (reinstall the package, or rebuild it with 'lynx demo experiment')`);
  }
  return d;
}
