/**
 * LayerNorm and RMSNorm (times a constant scale, folded into the gain) as WebGPU programs. Per
 * norm: the forward is one dispatch; the backward is one for dx, one for per-chunk partial sums of
 * the parameter gradients and one per parameter to finish those sums (program.ts's column sum;
 * LayerNorm 1 + 4 dispatches, RMSNorm 1 + 3; their op formulations run 20-22 and 14-17). Nothing
 * is saved but x: each pass recomputes the row statistics, which costs a re-read of a row the
 * pass reads anyway.
 *
 * Layout: a row is reduced by L lanes (a power of two up to 64: at most 8 columns a lane up to
 * dim 512), so a workgroup of 64 lanes normalises 64 / L rows at a time and narrow rows do not
 * idle lanes. Row sums go through workgroup memory; every barrier sits in a loop whose bound is a
 * uniform (rows past the end are clamped for reading and never written), as WGSL's uniformity
 * rules require.
 *
 *   y = (x - mean) r g s + b,  r = 1 / sqrt(var + eps)          (RMSNorm: mean 0, var = mean(x^2), no b)
 *   dx = r (dxh - mean(dxh) - xhat mean(dxh xhat)),  dxh = dy g s  (RMSNorm: without mean(dxh))
 *   dg = s sum_rows dy xhat,  db = sum_rows dy
 */
import * as tf from '@tensorflow/tfjs'

import {columnSum, MAX_WORKGROUPS, registerWebgpuKernel, runGroupProgram, runKernel, WORKGROUP} from './program.js'

type CG = Parameters<typeof tf.customGrad>[0]

/** Workgroups of the parameter-gradient pass: enough to fill a GPU, few enough to finish cheaply. */
const TARGET_CHUNKS = 512

interface NormKind {
  /** LayerNorm subtracts the row mean (and has a bias); RMSNorm does not. */
  centered: boolean
}

/** The shape-dependent constants of a norm's shaders (baked in: tfjs keys pipelines by rank only). */
interface Layout {
  rows: number
  dim: number
  /** Lanes per row. */
  lanes: number
  /** Rows a workgroup handles at once. */
  rowsPerPass: number
  /** Columns per lane. */
  perLane: number
}

function layout(shape: number[]): Layout {
  const [rows, dim] = shape
  let lanes = 1
  while (lanes < WORKGROUP && lanes * 8 < dim) lanes *= 2
  return {rows, dim, lanes, rowsPerPass: WORKGROUP / lanes, perLane: Math.ceil(dim / lanes)}
}

const keyOf = (name: string, l: Layout): string => `${name}_${l.dim}_${l.lanes}`

/**
 * WGSL shared by the passes: the row sum over a row's lanes, and `rowStats` (mean, r) of the row
 * starting at `base`. Callers declare `uniforms.eps` and an input `X`.
 */
function rowCode(kind: NormKind, l: Layout): string {
  const meanCode = kind.centered
    ? `var s = 0.0;
       for (var c = lane % L; c < DIM; c = c + L) { s = s + X[base + c]; }
       let mean = rowSum(lane, vec2<f32>(s, 0.0)).x / f32(DIM);`
    : 'let mean = 0.0;'
  return `
    const DIM = ${l.dim};
    const L = ${l.lanes};
    const R = ${l.rowsPerPass};
    var<workgroup> red : array<vec2<f32>, ${WORKGROUP}>;

    // Sum of v over the L lanes sharing this lane's row; all of them get it.
    fn rowSum(lane : i32, v : vec2<f32>) -> vec2<f32> {
      red[lane] = v;
      workgroupBarrier();
      for (var s = L / 2; s > 0; s = s / 2) {
        if (lane % L < s) { red[lane] = red[lane] + red[lane + s]; }
        workgroupBarrier();
      }
      let total = red[lane - lane % L];
      workgroupBarrier();
      return total;
    }

    // (mean, 1 / sqrt(var + eps)) of the row at base, two-pass as the op formulation.
    fn rowStats(lane : i32, base : i32) -> vec2<f32> {
      ${meanCode}
      var q = 0.0;
      for (var c = lane % L; c < DIM; c = c + L) {
        let d = X[base + c] - mean;
        q = q + d * d;
      }
      let variance = rowSum(lane, vec2<f32>(q, 0.0)).x / f32(DIM);
      return vec2<f32>(mean, inverseSqrt(variance + uniforms.eps));
    }`
}

/** Workgroups and passes per workgroup to cover every row (a dispatch holds 65535 workgroups). */
function rowGrid(l: Layout): {groups: number; iters: number} {
  const passes = Math.ceil(l.rows / l.rowsPerPass)
  const groups = Math.max(1, Math.min(MAX_WORKGROUPS, passes))
  return {groups, iters: Math.ceil(passes / groups)}
}

/** Each pass of a row-wise program: `row` (this lane's), `valid`, `base` (row start, clamped). */
function eachRow(body: string): string {
  return `
    fn groupBody(group : i32, lane : i32) {
      for (var it = 0; it < uniforms.iters; it = it + 1) {
        let row = (group + it * uniforms.groups) * R + lane / L;
        let valid = row < uniforms.rows;
        let base = min(row, uniforms.rows - 1) * DIM;
        ${body}
      }
    }`
}

function rowUniforms(l: Layout, eps: number, scale: number) {
  const {groups, iters} = rowGrid(l)
  return {
    groups,
    uniforms: [
      {name: 'rows', type: 'i32' as const, value: l.rows},
      {name: 'groups', type: 'i32' as const, value: groups},
      {name: 'iters', type: 'i32' as const, value: iters},
      {name: 'eps', type: 'f32' as const, value: eps},
      {name: 'scale', type: 'f32' as const, value: scale},
    ],
  }
}

type Inputs = Record<string, tf.TensorInfo>

function registerForward(name: string, kind: NormKind): void {
  registerWebgpuKernel(name, ({inputs, backend, attrs}) => {
    const {x, g, b} = inputs as Inputs
    const l = layout(x.shape)
    const bias = kind.centered ? ' + B[c]' : ''
    return runGroupProgram(backend, {
      key: keyOf(name, l),
      inputs: kind.centered ? [x, g, b] : [x, g],
      names: kind.centered ? ['X', 'G', 'B'] : ['X', 'G'],
      outputShape: x.shape,
      ...rowUniforms(l, attrs.eps as number, (attrs.scale as number) ?? 1),
      code: `${rowCode(kind, l)}
        ${eachRow(`
          let st = rowStats(lane, base);
          if (valid) {
            for (var c = lane % L; c < DIM; c = c + L) {
              result[base + c] = (X[base + c] - st.x) * st.y * G[c] * uniforms.scale${bias};
            }
          }`)}`,
    })
  })
}

function registerGradX(name: string, kind: NormKind): void {
  registerWebgpuKernel(name, ({inputs, backend, attrs}) => {
    const {dy, x, g} = inputs as Inputs
    const l = layout(x.shape)
    const meanDxh = kind.centered ? ' - m.x' : ''
    return runGroupProgram(backend, {
      key: keyOf(name, l),
      inputs: [dy, x, g],
      names: ['DY', 'X', 'G'],
      outputShape: x.shape,
      ...rowUniforms(l, attrs.eps as number, (attrs.scale as number) ?? 1),
      code: `${rowCode(kind, l)}
        ${eachRow(`
          let st = rowStats(lane, base);
          var s = vec2<f32>(0.0, 0.0);
          for (var c = lane % L; c < DIM; c = c + L) {
            let dxh = DY[base + c] * G[c] * uniforms.scale;
            s = s + vec2<f32>(dxh, dxh * (X[base + c] - st.x) * st.y);
          }
          // (mean(dxh), mean(dxh xhat))
          let m = rowSum(lane, s) / f32(DIM);
          if (valid) {
            for (var c = lane % L; c < DIM; c = c + L) {
              let dxh = DY[base + c] * G[c] * uniforms.scale;
              let xhat = (X[base + c] - st.x) * st.y;
              result[base + c] = st.y * (dxh${meanDxh} - xhat * m.y);
            }
          }`)}`,
    })
  })
}

/**
 * Partial sums over chunks of rows, [chunks, dim] per quantity side by side: per column
 * sum(dy xhat), and for LayerNorm then sum(dy). Each lane accumulates its columns in registers across the chunk's passes; the
 * workgroup's row slots are then added through workgroup memory.
 */
function registerGradParamPartials(name: string, kind: NormKind): void {
  const quantities = kind.centered ? ['accG', 'accB'] : ['accG']
  registerWebgpuKernel(name, ({inputs, backend, attrs}) => {
    const {dy, x} = inputs as Inputs
    const l = layout(x.shape)
    const passes = Math.ceil(l.rows / l.rowsPerPass)
    const rounds = Math.ceil(passes / Math.min(passes, TARGET_CHUNKS))
    const chunks = Math.ceil(passes / rounds)
    const width = quantities.length * l.dim
    const finish = quantities.map((acc, q) => `
      for (var k = 0; k < K; k = k + 1) {
        let c = lane % L + k * L;
        if (c < DIM) { part[(lane / L) * DIM + c] = ${acc}[k]; }
      }
      workgroupBarrier();
      for (var c = lane; c < DIM; c = c + ${WORKGROUP}) {
        var t = 0.0;
        for (var slot = 0; slot < R; slot = slot + 1) { t = t + part[slot * DIM + c]; }
        result[group * ${width} + ${q * l.dim} + c] = t;
      }
      workgroupBarrier();`)
    return runGroupProgram(backend, {
      key: keyOf(name, l),
      inputs: [dy, x],
      names: ['DY', 'X'],
      outputShape: [chunks, width],
      groups: chunks,
      uniforms: [
        {name: 'rows', type: 'i32', value: l.rows},
        {name: 'rounds', type: 'i32', value: rounds},
        {name: 'eps', type: 'f32', value: attrs.eps as number},
      ],
      code: `${rowCode(kind, l)}
        const K = ${l.perLane};
        var<workgroup> part : array<f32, ${WORKGROUP * l.perLane}>;
        fn groupBody(group : i32, lane : i32) {
          ${quantities.map((acc) => `var ${acc} : array<f32, K>;`).join('\n')}
          for (var chunkPass = 0; chunkPass < uniforms.rounds; chunkPass = chunkPass + 1) {
            let row = (group * uniforms.rounds + chunkPass) * R + lane / L;
            let base = min(row, uniforms.rows - 1) * DIM;
            let st = rowStats(lane, base);
            if (row < uniforms.rows) {
              for (var k = 0; k < K; k = k + 1) {
                let c = lane % L + k * L;
                if (c < DIM) {
                  let dy = DY[base + c];
                  accG[k] = accG[k] + dy * (X[base + c] - st.x) * st.y;
                  ${kind.centered ? 'accB[k] = accB[k] + dy;' : ''}
                }
              }
            }
          }
          ${finish.join('\n')}
        }`,
    })
  })
}

const LAYER: NormKind = {centered: true}
const RMS: NormKind = {centered: false}
registerForward('UpsLayerNorm', LAYER)
registerGradX('UpsLayerNormGradX', LAYER)
registerGradParamPartials('UpsLayerNormGradParams', LAYER)
registerForward('UpsRmsNorm', RMS)
registerGradX('UpsRmsNormGradX', RMS)
registerGradParamPartials('UpsRmsNormGradGain', RMS)

/** The sums of columns offset .. offset + count - 1 of the partials [chunks, width]. */
const paramSum = (p: tf.Tensor2D, offset: number, count: number, scale = 1): tf.Tensor1D => columnSum(p, {base: offset, rows: p.shape[0], stride: p.shape[1], count, scale})

type LayerNormFn = (x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor2D
type RmsNormFn = (x: tf.Tensor2D, g: tf.Tensor1D) => tf.Tensor2D
const layerNorms = new Map<number, LayerNormFn>()
const rmsNorms = new Map<string, RmsNormFn>()

/**
 * LayerNorm over the last axis of x [rows, dim] on webgpu. A gain that is a Variable is read in
 * the backward directly (it cannot change within a step; saving it would cost a dispatch).
 */
export function layerNormProgram(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D {
  let op = layerNorms.get(eps)
  if (!op) {
    op = tf.customGrad(((xx: tf.Tensor2D, gg: tf.Tensor1D, bb: tf.Tensor1D, save: tf.GradSaveFunc) => {
      save(gg instanceof tf.Variable ? [xx] : [xx, gg])
      return {
        value: runKernel('UpsLayerNorm', {x: xx, g: gg, b: bb}, {eps}),
        gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
          const [sx, sg = gg] = saved
          const partials = runKernel<tf.Tensor2D>('UpsLayerNormGradParams', {dy, x: sx}, {eps})
          const dim = xx.shape[1]
          return [runKernel('UpsLayerNormGradX', {dy, x: sx, g: sg}, {eps}), paramSum(partials, 0, dim), paramSum(partials, dim, dim)]
        },
      }
    }) as unknown as CG) as unknown as LayerNormFn
    layerNorms.set(eps, op)
  }
  return op(x, g, b)
}

/** RMSNorm over the last axis of x [rows, dim], times the constant `scale`, on webgpu. */
export function rmsNormProgram(x: tf.Tensor2D, g: tf.Tensor1D, eps: number, scale: number): tf.Tensor2D {
  const key = `${eps}:${scale}`
  let op = rmsNorms.get(key)
  if (!op) {
    op = tf.customGrad(((xx: tf.Tensor2D, gg: tf.Tensor1D, save: tf.GradSaveFunc) => {
      save(gg instanceof tf.Variable ? [xx] : [xx, gg])
      return {
        value: runKernel('UpsRmsNorm', {x: xx, g: gg}, {eps, scale}),
        gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
          const [sx, sg = gg] = saved
          const partials = runKernel<tf.Tensor2D>('UpsRmsNormGradGain', {dy, x: sx}, {eps})
          return [runKernel('UpsRmsNormGradX', {dy, x: sx, g: sg}, {eps, scale}), paramSum(partials, 0, xx.shape[1], scale)]
        },
      }
    }) as unknown as CG) as unknown as RmsNormFn
    rmsNorms.set(key, op)
  }
  return op(x, g)
}
