// The smallest useful model for pass-manager and structure tests.
import { Graph, Model, Node, Value } from '../../src/graph/ir/index.ts';

const f32 = (n: number) => ({ tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: n }] } } });

/** graph "tiny": x → Relu (relu) → r → Neg (neg) → y, opset 17. */
export function tinyModel(): Model {
  const g = new Graph({ name: 'tiny' });
  const x = new Value('x', { type: f32(2) });
  g.addInput(x);
  const relu = new Node({ opType: 'Relu', name: 'relu', inputs: [x], outputs: ['r'] });
  const neg = new Node({ opType: 'Neg', name: 'neg', inputs: [relu.output()], outputs: ['y'] });
  g.append(relu, neg);
  g.addOutput(neg.output());
  return new Model(g, { opset: 17 });
}
