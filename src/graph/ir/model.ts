import { Graph } from './graph.ts';

/**
 * A model: the main graph plus everything ONNX keeps around it. Fields the IR does not
 * interpret (model-local functions, training info, unknown fields) are carried as decoded
 * protobuf data so that a load → save round trip loses nothing.
 */
export class Model {
  irVersion: number;
  /** Opset version per domain ('' is the default ONNX domain), in the loaded order. */
  readonly opsetImports = new Map<string, number>();
  /** The loaded OperatorSetIdProto of each domain (field presence, unknown fields), for a lossless save. */
  readonly opsetImportProtos = new Map<string, Record<string, unknown>>();
  producerName: string | undefined;
  producerVersion: string | undefined;
  domain: string | undefined;
  modelVersion: number | undefined;
  docString: string | undefined;
  readonly metadata = new Map<string, string>();
  graph: Graph;
  /** Model-local functions (FunctionProto), kept as decoded data. */
  functions: Record<string, unknown>[] = [];
  /** ModelProto fields the IR does not interpret (training_info, configuration, unknown fields). */
  extras: Record<string, unknown> = {};
  /** Folder the model was loaded from, against which external data locations resolve. */
  baseDir: string | undefined;

  constructor(graph: Graph = new Graph(), options: { irVersion?: number; opset?: number } = {}) {
    this.graph = graph;
    this.irVersion = options.irVersion ?? 8;
    if (options.opset !== undefined) this.opsetImports.set('', options.opset);
    this.producerName = undefined;
    this.producerVersion = undefined;
    this.domain = undefined;
    this.modelVersion = undefined;
    this.docString = undefined;
    this.baseDir = undefined;
  }

  /** The opset version imported for `domain` (default ONNX domain when omitted). */
  opset(domain = ''): number | undefined {
    return this.opsetImports.get(domain === 'ai.onnx' ? '' : domain);
  }
}
