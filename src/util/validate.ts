/**
 * Checking a JSON file the project wrote (probe.json, rule files, heads.json, calibration.json) against its zod schema
 * on load: a damaged or hand-edited file is refused with the field that is wrong, never read as something else.
 */
import type { z } from 'zod';
import { InvalidInputError } from './errors.js';

/** The first problem zod found, as "field 'a.b': what is wrong (got X)". */
export function describeIssue(error: z.ZodError, json: unknown): string {
  const issue = error.issues[0]!;
  const field = issue.path.map(String).join('.') || '(the file)';
  let value: unknown = json;
  for (const k of issue.path) value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined;
  const seen = value === undefined ? 'it is missing' : `got ${typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value))}`;
  return `field '${field}': ${issue.message.replace(/^Invalid input: /, '')} (${seen})`;
}

/** `json` parsed by `schema`, or an InvalidInputError: "<source>: not a valid <kind>: <issue>; <remedy>". */
export function parseFileJson<T>(schema: z.ZodType<T>, json: unknown, o: { source: string; kind: string; remedy: string }): T {
  const r = schema.safeParse(json);
  if (!r.success) throw new InvalidInputError(`${o.source}: not a valid ${o.kind}: ${describeIssue(r.error, json)}; ${o.remedy}`);
  return r.data;
}
