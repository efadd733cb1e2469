export * from './attribute.ts';
export * from './dtype.ts';
export * from './graph.ts';
export * from './model.ts';
export * from './names.ts';
export * from './node.ts';
export * from './tensor.ts';
export * from './value.ts';
