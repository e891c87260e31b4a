/**
 * Splits a reasoning model's streamed text at `</think>` into `reasoning_content` and `content`, as vLLM's and
 * DeepSeek's APIs separate them. A marker split over several pieces is held back until it is complete.
 */
export const THINK_END = '</think>';

export class ReasoningSplitter {
  private thinking: boolean;
  private held = '';
  private contentStarted = false;

  /** `thinking`: the prompt left the model inside its thinking (it ends with `<think>`). */
  constructor(thinking: boolean) {
    this.thinking = thinking;
  }

  /** The reasoning and content this piece adds (either may be empty). */
  push(piece: string): { reasoning: string; content: string } {
    if (!this.thinking) return { reasoning: '', content: this.content(piece) };
    const text = this.held + piece;
    const at = text.indexOf(THINK_END);
    if (at >= 0) {
      this.thinking = false;
      this.held = '';
      return { reasoning: text.slice(0, at), content: this.content(text.slice(at + THINK_END.length)) };
    }
    // Hold back a tail that may be the beginning of the marker.
    let keep = Math.min(text.length, THINK_END.length - 1);
    while (keep > 0 && !THINK_END.startsWith(text.slice(text.length - keep))) keep--;
    this.held = text.slice(text.length - keep);
    return { reasoning: text.slice(0, text.length - keep), content: '' };
  }

  /** The end of the stream: what was held back is reasoning after all. */
  finish(): { reasoning: string; content: string } {
    const reasoning = this.thinking ? this.held : '';
    this.held = '';
    return { reasoning, content: '' };
  }

  /** Content starts after the whitespace that follows `</think>`. */
  private content(text: string): string {
    if (this.contentStarted) return text;
    const trimmed = text.replace(/^\s+/, '');
    if (trimmed !== '') this.contentStarted = true;
    return trimmed;
  }
}
