/** Minimal ANSI styling, off when stdout is not a terminal or NO_COLOR is set. */
const CODES = { bold: [1, 22], dim: [2, 22], green: [32, 39], yellow: [33, 39], red: [31, 39], cyan: [36, 39] } as const;

export function paint(style: keyof typeof CODES, text: string): string {
  if (!process.stdout.isTTY || process.env.NO_COLOR) return text;
  const [on, off] = CODES[style];
  return `\u001b[${on}m${text}\u001b[${off}m`;
}
