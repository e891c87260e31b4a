/**
 * `Symbol.dispose` / `Symbol.asyncDispose` for `using` and `await using`. Node 20.4+ defines both; older Node 20
 * releases do not, so define them as Node itself does internally (`Symbol.for('nodejs.dispose')`), before any class
 * uses them as method keys. Import this module first wherever a class declares those methods.
 */
const symbols = Symbol as unknown as { dispose?: symbol; asyncDispose?: symbol };
if (symbols.dispose === undefined) Object.defineProperty(Symbol, 'dispose', { value: Symbol.for('nodejs.dispose') });
if (symbols.asyncDispose === undefined) Object.defineProperty(Symbol, 'asyncDispose', { value: Symbol.for('nodejs.asyncDispose') });

export {};
