/**
 * Gives inserted values and nodes names that no other value or node of the model has.
 * ONNX requires value names to be unique in a model (subgraphs included), and reviewers read
 * node names in diffs, so a pass never invents a name by hand.
 */
export class NameAuthority {
  private readonly taken = new Set<string>();
  private readonly counters = new Map<string, number>();

  /** Records an existing name (from a loaded model) so it is never handed out. */
  reserve(name: string): void {
    if (name !== '') this.taken.add(name);
  }

  /** True when the name is already used. */
  has(name: string): boolean {
    return this.taken.has(name);
  }

  /** Forgets a name (its owner was removed), so that a later insertion may reuse it. */
  release(name: string): void {
    this.taken.delete(name);
  }

  /**
   * Returns `base` if free, else `base_1`, `base_2`, …, and reserves the result.
   * @param base a readable stem such as `/blocks.0/ffn/ffn.2/MatMul_outlier`.
   */
  unique(base: string): string {
    const stem = base === '' ? 'v' : base;
    if (!this.taken.has(stem)) {
      this.taken.add(stem);
      return stem;
    }
    let i = this.counters.get(stem) ?? 1;
    while (this.taken.has(`${stem}_${i}`)) i++;
    this.counters.set(stem, i + 1);
    const name = `${stem}_${i}`;
    this.taken.add(name);
    return name;
  }
}
