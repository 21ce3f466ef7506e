/**
 * Hand-written WebGPU programs for the webgpu backend: a layer's forward or backward as one GPU
 * dispatch instead of the dozens of small tfjs kernels its op formulation runs (a training step on
 * a GPU is dispatch-bound: ~3 us of launch overhead per kernel against a few FLOPs of work).
 * Each program is a registered tfjs kernel (`Ups*`, backend `webgpu`), so tf.profile, tidy and the
 * memory accounting see it like any other kernel; callers wrap forward and backward kernels in
 * one tf.customGrad. The tfjs-op formulation stays as the reference the programs are tested
 * against (`setFusedKernels('off')` runs it on webgpu too).
 *
 * tfjs builds the shader's header: `result` (the output array), one read-only array per input
 * name, and `uniforms` (each input's shape plus the program's own uniforms). A program's code is
 * `fn main(index: i32)` over `threads` invocations (one per row, per element...), with a
 * grid-stride loop where the thread count exceeds one dispatch's 65535 workgroups.
 */
import * as tf from '@tensorflow/tfjs'

import {getFusedMode} from '../fused.js'

/** What tfjs-backend-webgpu's runWebGPUProgram needs of a program (its WebGPUProgram interface). */
interface WebgpuProgramShape {
  variableNames: string[]
  outputShape: number[]
  shaderKey: string
  dispatchLayout: {x: number[]}
  dispatch: [number, number, number]
  workgroupSize: [number, number, number]
  uniforms?: string
  size?: boolean
  getUserCode(): string
}

interface WebgpuBackendLike {
  runWebGPUProgram(program: WebgpuProgramShape, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms?: Array<{type: string; data: number[]}>): tf.TensorInfo
}

export const WORKGROUP = 64
/** WebGPU's limit on workgroups per dispatch dimension. */
export const MAX_WORKGROUPS = 65535

/** A uniform of the program: `name: i32|f32`, declared in the shader as `uniforms.<name>`. */
export interface Uniform {
  name: string
  type: 'i32' | 'f32'
  value: number
}

export interface ProgramSpec {
  /** Unique per distinct shader text: tfjs caches compiled pipelines by it (plus input shapes). */
  key: string
  inputs: tf.TensorInfo[]
  /** Input array names in the shader, in the order of `inputs`. */
  names: string[]
  outputShape: number[]
  /** Invocations of `main(index)`; `index` runs 0 .. threads - 1 (grid-stride beyond one dispatch). */
  threads: number
  uniforms?: Uniform[]
  /** WGSL: helper functions and `fn body(index: i32)`; the wrapper calls body for each index. */
  code: string
}

/** Runs one hand-written program on the webgpu backend: one dispatch, one output tensor. */
export function runProgram(backend: unknown, spec: ProgramSpec): tf.TensorInfo {
  const uniforms = [{name: 'threads', type: 'i32' as const, value: spec.threads}, ...(spec.uniforms ?? [])]
  const groups = Math.max(1, Math.min(MAX_WORKGROUPS, Math.ceil(spec.threads / WORKGROUP)))
  const program: WebgpuProgramShape = {
    variableNames: spec.names,
    outputShape: spec.outputShape,
    shaderKey: `ups_${spec.key}`,
    // A flat layout: tfjs's main(index) then receives globalId.x.
    dispatchLayout: {x: spec.outputShape.map((_, i) => i)},
    dispatch: [groups, 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: uniforms.map((u) => `${u.name} : ${u.type},`).join(' '),
    getUserCode: () => `
      ${spec.code}
      ${'fn main(index : i32)'} {
        let stride = i32(numWorkgroups.x) * ${WORKGROUP};
        for (var i = index; i < uniforms.threads; i = i + stride) {
          body(i);
        }
      }`,
  }
  return (backend as WebgpuBackendLike).runWebGPUProgram(program, spec.inputs, 'float32', uniformData(uniforms))
}

/** Uniform values as tfjs's runWebGPUProgram and recordAndSubmit take them. */
export function uniformData(uniforms: Uniform[]): Array<{type: string; data: number[]}> {
  return uniforms.map((u) => ({type: u.type === 'i32' ? 'int32' : 'float32', data: [u.value]}))
}

export interface GroupProgramSpec extends Omit<ProgramSpec, 'threads' | 'code'> {
  /** Workgroups of WORKGROUP lanes (at most 65535): one per item a reduction produces. */
  groups: number
  /**
   * WGSL: helper functions, any `var<workgroup>` arrays, and `fn groupBody(group: i32, lane: i32)`.
   * It is called once per invocation in uniform control flow, so it may call workgroupBarrier()
   * as long as its own branches around barriers depend only on uniforms and constants.
   */
  code: string
}

/**
 * Runs a program whose workgroups cooperate (reductions through workgroup memory): workgroup
 * `group` of `groups`, lanes 0 .. WORKGROUP - 1.
 */
export function runGroupProgram(backend: unknown, spec: GroupProgramSpec): tf.TensorInfo {
  if (spec.groups > MAX_WORKGROUPS) throw new Error(`${spec.key}: ${spec.groups} workgroups exceed one dispatch (${MAX_WORKGROUPS})`)
  const uniforms = spec.uniforms ?? []
  const program: WebgpuProgramShape = {
    variableNames: spec.names,
    outputShape: spec.outputShape,
    shaderKey: `ups_${spec.key}`,
    dispatchLayout: {x: spec.outputShape.map((_, i) => i)},
    dispatch: [Math.max(1, spec.groups), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    ...(uniforms.length > 0 ? {uniforms: uniforms.map((u) => `${u.name} : ${u.type},`).join(' ')} : {}),
    getUserCode: () => `
      ${spec.code}
      fn main(index : i32) {
        groupBody(i32(workgroupId.x), i32(localIndex));
      }`,
  }
  return (backend as WebgpuBackendLike).runWebGPUProgram(program, spec.inputs, 'float32', uniformData(uniforms))
}

/** Registers a kernel for the webgpu backend once (modules may be loaded more than once in tests). */
export function registerWebgpuKernel(name: string, kernelFunc: (args: {inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: Record<string, unknown>}) => tf.TensorInfo): void {
  if (tf.getKernel(name, 'webgpu')) return
  tf.registerKernel({kernelName: name, backendName: 'webgpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc})
}

/** Columns per workgroup when summing columns (8 lanes read 32 contiguous bytes). */
const SUM_COLUMNS = 8

/**
 * result[c] = scale * sum_k P[base + k * stride + c] for c < count, k < rows: the last step of a
 * reduction whose programs left partial sums per chunk of rows (the norms' and the attention's
 * gain gradients). A workgroup sums SUM_COLUMNS columns, its lanes striding over the rows.
 */
registerWebgpuKernel('UpsColumnSum', ({inputs, backend, attrs}) => {
  const count = attrs.count as number
  const lanesPerColumn = WORKGROUP / SUM_COLUMNS
  return runGroupProgram(backend, {
    key: 'column_sum',
    inputs: [inputs.p],
    names: ['P'],
    outputShape: [count],
    groups: Math.ceil(count / SUM_COLUMNS),
    uniforms: [
      {name: 'base', type: 'i32', value: attrs.base as number},
      {name: 'rows', type: 'i32', value: attrs.rows as number},
      {name: 'stride', type: 'i32', value: attrs.stride as number},
      {name: 'count', type: 'i32', value: count},
      {name: 'scale', type: 'f32', value: (attrs.scale as number) ?? 1},
    ],
    code: `
      var<workgroup> red : array<f32, ${WORKGROUP}>;
      fn groupBody(group : i32, lane : i32) {
        let col = group * ${SUM_COLUMNS} + lane % ${SUM_COLUMNS};
        let at = uniforms.base + min(col, uniforms.count - 1);
        var acc = 0.0;
        for (var k = lane / ${SUM_COLUMNS}; k < uniforms.rows; k = k + ${lanesPerColumn}) {
          acc = acc + P[at + k * uniforms.stride];
        }
        red[lane] = acc;
        workgroupBarrier();
        for (var s = ${WORKGROUP / 2}; s >= ${SUM_COLUMNS}; s = s / 2) {
          if (lane < s) { red[lane] = red[lane] + red[lane + s]; }
          workgroupBarrier();
        }
        if (lane < ${SUM_COLUMNS} && col < uniforms.count) { result[col] = red[lane] * uniforms.scale; }
      }`,
  })
})

/** Column sums of partials laid out in `p` (see UpsColumnSum): one dispatch. */
export function columnSum(p: tf.Tensor, at: {base: number; rows: number; stride: number; count: number; scale?: number}): tf.Tensor1D {
  return runKernel<tf.Tensor1D>('UpsColumnSum', {p}, {scale: 1, ...at})
}

/** Runs a registered kernel as an op (tracked by tidy and tf.profile). */
export function runKernel<T extends tf.Tensor>(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}): T {
  return tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as T
}

/**
 * True when the layers should run the hand-written programs: on webgpu unless the tfjs-op
 * reference path is forced (`setFusedKernels('off')`).
 */
export function useWebgpuPrograms(): boolean {
  return tf.getBackend() === 'webgpu' && getFusedMode() !== 'off'
}

export interface DispatchCounter {
  /** Programs recorded since the counter started (or was reset). */
  readonly count: number
  reset(): void
  stop(): void
}

/**
 * Counts the programs the webgpu backend records into its compute pass (one GPU dispatch each),
 * by wrapping its recordAndSubmit until stop(): for benchmarks and tests. On other backends it
 * counts nothing.
 */
export function dispatchCounter(): DispatchCounter {
  let count = 0
  if (tf.getBackend() !== 'webgpu') return {count: 0, reset: () => undefined, stop: () => undefined}
  const gpu = tf.backend() as unknown as {recordAndSubmit: (...a: unknown[]) => unknown}
  const record = gpu.recordAndSubmit
  gpu.recordAndSubmit = function (this: unknown, ...a: unknown[]) {
    count += 1
    return record.apply(this, a)
  }
  return {
    get count() {
      return count
    },
    reset: () => void (count = 0),
    stop: () => void (gpu.recordAndSubmit = record),
  }
}
