// Every export of the library entry (src/index.ts) carries TSDoc, and so does every member
// of an exported class or interface that users call or fill in: the API reference and the
// editor's hover text come from these comments.
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const program = ts.createProgram(['src/index.ts'], { allowImportingTsExtensions: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, types: ['node'] });
const checker = program.getTypeChecker();
const entry = checker.getSymbolAtLocation(program.getSourceFile('src/index.ts')!)!;

function documented(symbol: ts.Symbol): boolean {
  if (symbol.getDocumentationComment(checker).length > 0) return true;
  // A doc comment made only of tags (`@param`, `@returns`) counts too.
  return (symbol.declarations ?? []).some((d) => ts.getJSDocCommentsAndTags(d).length > 0);
}

describe('TSDoc on the public API', () => {
  const exports = checker.getExportsOfModule(entry).map((s) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s));

  it('documents every export of src/index.ts', () => {
    expect(exports.length).toBeGreaterThan(40);
    expect(exports.filter((s) => !documented(s)).map((s) => s.getName())).toEqual([]);
  });

  it('documents the members of the exported functions options and results', () => {
    const names = ['QuantizeOptions', 'ConvertFileOptions', 'ConvertOptions', 'ConvertResult', 'CalibrationModule', 'CalibrationContext', 'FeedsContext', 'RolloutRun', 'FeedSample', 'Plugin', 'Pass', 'PassContext', 'PassResult', 'PassManagerOptions', 'PassRecord'];
    const missing: string[] = [];
    for (const s of exports.filter((e) => names.includes(e.getName()))) {
      for (const m of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(s))) if (!documented(m)) missing.push(`${s.getName()}.${m.getName()}`);
    }
    expect(missing).toEqual([]);
  });
});
