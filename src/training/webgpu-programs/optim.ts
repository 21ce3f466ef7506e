/**
 * The optimizer phase of a training step on webgpu (after forward and backward) as a few
 * hand-written programs instead of ~140 tfjs dispatches:
 *   concat   the gradients into one flat buffer, seven per dispatch (divided by the micro-batch count)
 *   norm     per-workgroup sums of squares of the flat gradient (one dispatch; summed on the CPU)
 *   update   Adam/AdamW (m', v', p') or SGD (momentum', p') in one dispatch
 *   EMA      shadow' = decay * shadow + (1 - decay) * p' in one dispatch
 *   split    the new flat parameters into the variables, seven per dispatch
 * A program here may write several buffers, which tfjs's program header cannot declare: these
 * shaders are written whole and recorded through the backend's own recordAndSubmit, so tfjs's
 * bookkeeping (buffers in flight, deferred submits, dispatch counts) sees them as any program.
 * A dispatch binds at most `maxStorageBuffersPerShaderStage` buffers (tfjs's device keeps the
 * default, 8), hence the chunks of seven. The arithmetic is the tfjs-op update's, op by op.
 */
import * as tf from '@tensorflow/tfjs'

import {MAX_WORKGROUPS, registerWebgpuKernel, runGroupProgram, runKernel, runProgram, type Uniform, uniformData, WORKGROUP} from './program.js'

interface GpuDeviceLike {
  limits: {maxStorageBuffersPerShaderStage: number}
  createShaderModule(descriptor: {code: string; label?: string}): unknown
  createComputePipeline(descriptor: {layout: 'auto'; label?: string; compute: {module: unknown; entryPoint: string}}): unknown
}

/** What these programs use of tfjs-backend-webgpu (recordAndSubmit is private in its typings). */
interface WebgpuBackendInternals {
  device: GpuDeviceLike
  makeTensorInfo(shape: number[], dtype: 'float32', values?: Float32Array): tf.TensorInfo
  uploadToGPU(dataId: tf.DataId): void
  /** Binds [output, ...inputs, uniforms] and records one dispatch of `program.pipeline`. */
  recordAndSubmit(program: {pipeline: unknown; dispatch: [number, number, number]}, output: tf.TensorInfo, inputs: tf.TensorInfo[], uniforms: Array<{type: string; data: number[]}>): void
}

/** A program over buffers it writes (bindings 0..) and buffers it reads, as `fn body(i: i32)` per index. */
interface BufferProgram {
  /** Unique per distinct shader text. */
  key: string
  written: Array<[name: string, tensor: tf.TensorInfo]>
  read: Array<[name: string, tensor: tf.TensorInfo]>
  threads: number
  uniforms: Uniform[]
  code: string
}

const pipelines = new WeakMap<GpuDeviceLike, Map<string, unknown>>()

function shaderSource(p: BufferProgram): string {
  const buffers = [...p.written.map(([n]) => [n, 'read_write']), ...p.read.map(([n]) => [n, 'read'])]
  // recordAndSubmit fills the uniform buffer with NaN, Infinity and every bound buffer's shape and
  // strides (one i32 each: all are bound as rank-1 views) ahead of the program's own uniforms.
  const members = ['nan_ : f32', 'inf_ : f32', ...buffers.flatMap((_, b) => [`shape${b}_ : i32`, `strides${b}_ : i32`]), 'threads : i32', ...p.uniforms.map((u) => `${u.name} : ${u.type}`)]
  return `
    struct Uniforms { ${members.join(', ')} }
    ${buffers.map(([name, access], b) => `@group(0) @binding(${b}) var<storage, ${access}> ${name} : array<f32>;`).join('\n    ')}
    @group(0) @binding(${buffers.length}) var<uniform> uniforms : Uniforms;
    ${p.code}
    @compute @workgroup_size(${WORKGROUP}, 1, 1)
    fn main(@builtin(global_invocation_id) id : vec3<u32>, @builtin(num_workgroups) groups : vec3<u32>) {
      let stride = i32(groups.x) * ${WORKGROUP};
      for (var i = i32(id.x); i < uniforms.threads; i = i + stride) {
        body(i);
      }
    }`
}

function pipelineFor(device: GpuDeviceLike, p: BufferProgram): unknown {
  let cache = pipelines.get(device)
  if (!cache) pipelines.set(device, (cache = new Map()))
  let pipeline = cache.get(p.key)
  if (!pipeline) {
    const module = device.createShaderModule({code: shaderSource(p), label: `ups_${p.key}`})
    pipeline = device.createComputePipeline({layout: 'auto', label: `ups_${p.key}`, compute: {module, entryPoint: 'main'}})
    cache.set(p.key, pipeline)
  }
  return pipeline
}

/** Records one dispatch of `p` (nothing when it has no threads). */
function dispatch(backend: WebgpuBackendInternals, p: BufferProgram): void {
  if (p.threads === 0) return
  const views = [...p.written, ...p.read].map(([, t]) => {
    backend.uploadToGPU(t.dataId)
    return {dataId: t.dataId, shape: [tf.util.sizeFromShape(t.shape)], dtype: 'float32' as const}
  })
  const groups = Math.max(1, Math.min(MAX_WORKGROUPS, Math.ceil(p.threads / WORKGROUP)))
  const uniforms = uniformData([{name: 'threads', type: 'i32', value: p.threads}, ...p.uniforms])
  backend.recordAndSubmit({pipeline: pipelineFor(backend.device, p), dispatch: [groups, 1, 1]}, views[0], views.slice(1), uniforms)
}

/** A new float32 tensor on the GPU (a zero-size one stays a CPU array: a binding needs bytes). */
function allocate(backend: WebgpuBackendInternals, shape: number[]): tf.TensorInfo {
  if (tf.util.sizeFromShape(shape) === 0) return backend.makeTensorInfo(shape, 'float32', new Float32Array(0))
  const t = backend.makeTensorInfo(shape, 'float32')
  backend.uploadToGPU(t.dataId)
  return t
}

interface Piece {
  tensor: tf.TensorInfo
  size: number
  /** Offset in the flat buffer. */
  at: number
}

/**
 * Consecutive non-empty pieces of a flat buffer in runs of at most `per` (one dispatch each);
 * a run covers flat[base, base + its size) without gaps.
 */
function runsOf(tensors: tf.TensorInfo[], per: number): Piece[][] {
  const pieces: Piece[] = []
  let at = 0
  for (const tensor of tensors) {
    const size = tf.util.sizeFromShape(tensor.shape)
    if (size > 0) pieces.push({tensor, size, at})
    at += size
  }
  const runs: Piece[][] = []
  for (let i = 0; i < pieces.length; i += per) runs.push(pieces.slice(i, i + per))
  return runs
}

/** Uniforms of a run: where it starts in the flat buffer and where each piece but the last ends. */
function runUniforms(run: Piece[]): {threads: number; uniforms: Uniform[]} {
  const base = run[0].at
  const ends = run.slice(0, -1).map((p, j) => ({name: `end${j}`, type: 'i32' as const, value: p.at + p.size - base}))
  const last = run[run.length - 1]
  return {threads: last.at + last.size - base, uniforms: [{name: 'base', type: 'i32', value: base}, ...ends]}
}

/** `piece(j, local)` for the piece that flat index base + i falls in (the last piece needs no test). */
function eachPiece(count: number, piece: (j: number, local: string) => string): string {
  const lines: string[] = []
  for (let j = 0; j < count; j++) {
    const local = j === 0 ? 'i' : `i - uniforms.end${j - 1}`
    lines.push(j === count - 1 ? piece(j, local) : `if (i < uniforms.end${j}) { ${piece(j, local)} return; }`)
  }
  return lines.join('\n        ')
}

const perDispatch = (backend: WebgpuBackendInternals): number => backend.device.limits.maxStorageBuffersPerShaderStage - 1

registerWebgpuKernel('UpsFlatConcat', ({inputs, backend, attrs}) => {
  const b = backend as WebgpuBackendInternals
  const parts = Array.from({length: attrs.count as number}, (_, i) => inputs[`x${i}`])
  const out = allocate(b, [parts.reduce((s, t) => s + tf.util.sizeFromShape(t.shape), 0)])
  for (const run of runsOf(parts, perDispatch(b))) {
    const {threads, uniforms} = runUniforms(run)
    dispatch(b, {
      key: `flat_concat_${run.length}`,
      written: [['OUT', out]],
      read: run.map((p, j) => [`X${j}`, p.tensor]),
      threads,
      uniforms: [...uniforms, {name: 'divisor', type: 'f32', value: attrs.divisor as number}],
      code: `
      fn body(i : i32) {
        let o = uniforms.base + i;
        ${eachPiece(run.length, (j, local) => `OUT[o] = X${j}[${local}] / uniforms.divisor;`)}
      }`,
    })
  }
  return out
})

registerWebgpuKernel('UpsFlatSplit', ({inputs, backend, attrs}) => {
  const b = backend as WebgpuBackendInternals
  const outs = (attrs.shapes as number[][]).map((shape) => allocate(b, shape))
  for (const run of runsOf(outs, perDispatch(b))) {
    const {threads, uniforms} = runUniforms(run)
    dispatch(b, {
      key: `flat_split_${run.length}`,
      written: run.map((p, j) => [`Y${j}`, p.tensor]),
      read: [['FLAT', inputs.flat]],
      threads,
      uniforms,
      code: `
      fn body(i : i32) {
        let x = FLAT[uniforms.base + i];
        ${eachPiece(run.length, (j, local) => `Y${j}[${local}] = x;`)}
      }`,
    })
  }
  return outs as unknown as tf.TensorInfo
})

/** Elements per workgroup of the norm (64 per lane) before another is added; at most 256 sums are read back. */
const NORM_ROUND = WORKGROUP * 64
const NORM_MAX_GROUPS = 256

registerWebgpuKernel('UpsSumSquaresPartials', ({inputs, backend}) => {
  const n = tf.util.sizeFromShape(inputs.x.shape)
  const groups = Math.max(1, Math.min(NORM_MAX_GROUPS, Math.ceil(n / NORM_ROUND)))
  return runGroupProgram(backend, {
    key: 'sum_squares_partials',
    inputs: [inputs.x],
    names: ['X'],
    outputShape: [groups],
    groups,
    uniforms: [{name: 'count', type: 'i32', value: n}, {name: 'groups', type: 'i32', value: groups}],
    code: `
      var<workgroup> partial : array<f32, ${WORKGROUP}>;
      fn groupBody(group : i32, lane : i32) {
        var s = 0.0;
        for (var i = group * ${WORKGROUP} + lane; i < uniforms.count; i = i + uniforms.groups * ${WORKGROUP}) {
          let x = X[i];
          s = s + x * x;
        }
        partial[lane] = s;
        workgroupBarrier();
        for (var w = ${WORKGROUP / 2}; w > 0; w = w / 2) {
          if (lane < w) {
            partial[lane] = partial[lane] + partial[lane + w];
          }
          workgroupBarrier();
        }
        if (lane == 0) {
          result[group] = partial[0];
        }
      }`,
  })
})

/** Adam and AdamW: the moments and the parameters in one pass (see Optimizer.applyOps for the ops). */
registerWebgpuKernel('UpsAdamUpdate', ({inputs, backend, attrs}) => {
  const b = backend as WebgpuBackendInternals
  const {g, p, m, v} = inputs
  const [m1, v1, p1] = [m, v, p].map((t) => allocate(b, t.shape))
  const names = ['scale', 'l2', 'decay', 'b1', 'oneMinusB1', 'b2', 'oneMinusB2', 'sqrtBc2', 'eps', 'stepSize'] as const
  dispatch(b, {
    key: 'adam_update',
    written: [['P1', p1], ['M1', m1], ['V1', v1]],
    read: [['G', g], ['P', p], ['M', m], ['V', v]],
    threads: tf.util.sizeFromShape(p.shape),
    uniforms: names.map((name) => ({name, type: 'f32', value: attrs[name] as number})),
    code: `
      fn body(i : i32) {
        let p = P[i];
        let g = G[i] * uniforms.scale + p * uniforms.l2;
        let m = M[i] * uniforms.b1 + g * uniforms.oneMinusB1;
        let v = V[i] * uniforms.b2 + (g * g) * uniforms.oneMinusB2;
        M1[i] = m;
        V1[i] = v;
        P1[i] = p * uniforms.decay - (m / (sqrt(v) / uniforms.sqrtBc2 + uniforms.eps)) * uniforms.stepSize;
      }`,
  })
  return [m1, v1, p1] as unknown as tf.TensorInfo
})

/** SGD with optional momentum (and Nesterov): the buffer and the parameters in one pass. */
registerWebgpuKernel('UpsSgdUpdate', ({inputs, backend, attrs}) => {
  const b = backend as WebgpuBackendInternals
  const {g, p, buf} = inputs
  const p1 = allocate(b, p.shape)
  const buf1 = buf ? allocate(b, buf.shape) : null
  const names = ['scale', 'l2', 'mu', 'first', 'nesterov', 'lr'] as const
  const momentum = `
        let b = select(B[i] * uniforms.mu + g, g, uniforms.first > 0.0);
        B1[i] = b;
        let d = select(b, g + b * uniforms.mu, uniforms.nesterov > 0.0);`
  dispatch(b, {
    key: buf1 ? 'sgd_momentum_update' : 'sgd_update',
    written: buf1 ? [['P1', p1], ['B1', buf1]] : [['P1', p1]],
    read: buf ? [['G', g], ['P', p], ['B', buf]] : [['G', g], ['P', p]],
    threads: tf.util.sizeFromShape(p.shape),
    uniforms: names.map((name) => ({name, type: 'f32', value: attrs[name] as number})),
    code: `
      fn body(i : i32) {
        let p = P[i];
        let g = G[i] * uniforms.scale + p * uniforms.l2;${buf1 ? momentum : '\n        let d = g;'}
        P1[i] = p - d * uniforms.lr;
      }`,
  })
  return (buf1 ? [buf1, p1] : [p1]) as unknown as tf.TensorInfo
})

registerWebgpuKernel('UpsEmaUpdate', ({inputs, backend, attrs}) =>
  runProgram(backend, {
    key: 'ema_update',
    inputs: [inputs.shadow, inputs.params],
    names: ['S', 'P'],
    outputShape: inputs.shadow.shape,
    threads: tf.util.sizeFromShape(inputs.shadow.shape),
    uniforms: [{name: 'decay', type: 'f32', value: attrs.decay as number}, {name: 'keep', type: 'f32', value: attrs.keep as number}],
    code: `
      fn body(i : i32) {
        result[i] = S[i] * uniforms.decay + P[i] * uniforms.keep;
      }`,
  }),
)

const runKernels = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): tf.Tensor[] =>
  tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as unknown as tf.Tensor[]

/** `parts` end to end, each element divided by `divisor` (any ranks: a buffer is bound as it lies). */
export function concatProgram(parts: tf.Tensor[], divisor = 1): tf.Tensor1D {
  return runKernel<tf.Tensor1D>('UpsFlatConcat', Object.fromEntries(parts.map((t, i) => [`x${i}`, t])), {count: parts.length, divisor})
}

/** The flat buffer cut into tensors of `shapes` (store order). */
export function splitProgram(flat: tf.Tensor1D, shapes: number[][]): tf.Tensor[] {
  return runKernels('UpsFlatSplit', {flat}, {shapes})
}

/** Sums of squares of a flat buffer per workgroup: their total is its squared L2 norm. */
export function sumSquaresPartials(flat: tf.Tensor1D): tf.Tensor1D {
  return runKernel<tf.Tensor1D>('UpsSumSquaresPartials', {x: flat})
}

/** The update's constants, as the tfjs-op update rounds them to float32 scalars. */
export interface AdamConstants {
  /** Gradient scale (clipping); 1 for none. */
  scale: number
  /** Adam's L2 weight decay added to the gradient (0 for AdamW). */
  l2: number
  /** AdamW's parameter factor 1 - lr * wd (1 for Adam). */
  decay: number
  b1: number
  b2: number
  sqrtBc2: number
  eps: number
  /** lr / (1 - b1^t). */
  stepSize: number
}

export function adamProgram(g: tf.Tensor1D, p: tf.Tensor1D, m: tf.Tensor1D, v: tf.Tensor1D, c: AdamConstants): {m: tf.Tensor1D; v: tf.Tensor1D; p: tf.Tensor1D} {
  const [m1, v1, p1] = runKernels('UpsAdamUpdate', {g, p, m, v}, {...c, oneMinusB1: 1 - c.b1, oneMinusB2: 1 - c.b2})
  return {m: m1 as tf.Tensor1D, v: v1 as tf.Tensor1D, p: p1 as tf.Tensor1D}
}

export interface SgdConstants {
  scale: number
  /** L2 weight decay added to the gradient. */
  l2: number
  lr: number
  mu: number
  /** The first step sets the momentum buffer to the gradient. */
  first: boolean
  nesterov: boolean
}

/** SGD: `buf` is the momentum buffer (null without momentum); returns the new one with the parameters. */
export function sgdProgram(g: tf.Tensor1D, p: tf.Tensor1D, buf: tf.Tensor1D | null, c: SgdConstants): {p: tf.Tensor1D; buf: tf.Tensor1D | null} {
  const attrs = {...c, first: c.first ? 1 : 0, nesterov: c.nesterov ? 1 : 0}
  const out = runKernels('UpsSgdUpdate', buf ? {g, p, buf} : {g, p}, attrs)
  return buf ? {buf: out[0] as tf.Tensor1D, p: out[1] as tf.Tensor1D} : {buf: null, p: out[0] as tf.Tensor1D}
}

/** decay * shadow + (1 - decay) * params in one dispatch. */
export function emaProgram(shadow: tf.Tensor1D, params: tf.Tensor1D, decay: number): tf.Tensor1D {
  return runKernel<tf.Tensor1D>('UpsEmaUpdate', {shadow, params}, {decay, keep: 1 - decay})
}
