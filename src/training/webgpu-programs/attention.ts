/**
 * The operator's channel-separated group attention (fused.ts `fusedGroupAttention`: RMS-normalised
 * q/k with gains, softmax(q k^T / sqrt(hd)) v per (batch, group, head)) as WebGPU programs: one
 * dispatch forward and four backward, where the tfjs-op path (`setFusedKernels('off')`) runs ~55.
 *
 * The forward and the attention backward give each head instance (b, g, h) a slot of a workgroup,
 * one lane per token (short sequences share a workgroup: 64 / T slots). A slot first puts the
 * instance's per-token statistics in workgroup memory (inverse RMS of the q and k rows; in the
 * backward also each query's log-sum-exp and dO.O), so no lane recomputes another token's. Only
 * the inputs and the output are kept for the backward: recomputing the softmax statistics there
 * is cheaper than a second forward dispatch.
 *
 * Backward: (1) attention backward -> one flat scratch tensor: d(qn) | d(kn) | dv per row, then
 * per (b, g) the partial sums of the gain gradients; (2) the RMSNorm backward -> dqkv; (3, 4) the
 * partial sums reduced to dgq and dgk (program.ts's column sum at two offsets).
 *
 * Only array sizes are baked into the WGSL (head width, workgroup-array capacity); the shape is
 * uniforms. That keeps one pipeline per head width, and lavapipe's LLVM from unrolling the token
 * loops (with constant bounds the backward compiled for tens of seconds).
 */
import * as tf from '@tensorflow/tfjs'

import type {GroupAttentionShape} from '../fused.js'
import {columnSum, MAX_WORKGROUPS, registerWebgpuKernel, runGroupProgram, runKernel, runProgram, type Uniform, WORKGROUP} from './program.js'

type CG = Parameters<typeof tf.customGrad>[0]

/** WebGPU's default limit on one workgroup's shared memory (maxComputeWorkgroupStorageSize). */
const WORKGROUP_BYTES = 16384

/** Entries of each per-token workgroup array: 256, or the tokens rounded up to a multiple of it. */
const tokenCapacity = (tokens: number): number => 256 * Math.ceil(tokens / 256)

/** False where the per-token statistics do not fit a workgroup's memory (T > 512, or hd > 16-24). */
export function webgpuAttentionFits(s: GroupAttentionShape): boolean {
  return 4 * (4 * tokenCapacity(s.tokens) + WORKGROUP * 2 * s.headDim) <= WORKGROUP_BYTES
}

const shapeOf = (attrs: Record<string, unknown>): GroupAttentionShape => attrs.shape as GroupAttentionShape

const shapeUniforms = (s: GroupAttentionShape): Uniform[] => [
  {name: 'tokens', type: 'i32', value: s.tokens},
  {name: 'groups', type: 'i32', value: s.groups},
  {name: 'heads', type: 'i32', value: s.heads},
  {name: 'eps', type: 'f32', value: s.eps},
]

/** Lanes per instance (one per token, at most 64), instances per workgroup, and the dispatch. */
function instanceDispatch(s: GroupAttentionShape): {groups: number; uniforms: Uniform[]} {
  const lanes = Math.min(WORKGROUP, s.tokens)
  const slots = Math.floor(WORKGROUP / lanes)
  const instances = s.batch * s.groups * s.heads
  const needed = Math.ceil(instances / slots)
  const groups = Math.min(MAX_WORKGROUPS, needed)
  const values = {lanes, slots, instances, launched: groups, chunks: Math.ceil(needed / groups)}
  return {groups, uniforms: [...shapeUniforms(s), ...Object.entries(values).map(([name, value]) => ({name, type: 'i32' as const, value}))]}
}

/** Shared by every program here: sizes, row indexing, the RMS of a q or k row. */
const header = (headDim: number): string => `
  const HEAD_DIM = ${headDim};
  const SCALE = ${(1 / Math.sqrt(headDim)).toPrecision(9)};

  fn groupSize() -> i32 { return uniforms.heads * HEAD_DIM; }
  fn rowWidth() -> i32 { return 3 * uniforms.heads * HEAD_DIM; }

  // Row (b, t, g) of qkv and of the output.
  fn rowOf(b : i32, t : i32, g : i32) -> i32 {
    return (b * uniforms.tokens + t) * uniforms.groups + g;
  }

  // 1 / sqrt(mean(x^2) + eps) over q (part 0) or k (part 1) of a qkv row.
  fn inverseRms(row : i32, part : i32) -> f32 {
    let o = row * rowWidth() + part * groupSize();
    var ss = 0.0;
    for (var c = 0; c < groupSize(); c += 1) {
      let x = QKV[o + c];
      ss += x * x;
    }
    return inverseSqrt(ss / f32(groupSize()) + uniforms.eps);
  }`

/**
 * The instance programs' frame: workgroup slot -> instance (b, g, h), in chunks where one
 * dispatch's workgroups do not cover them; per-token workgroup arrays are indexed at(slot, t).
 * The programs define `instance(inst, live, slot, l, lane)`.
 */
const instanceFrame = `
  fn at(slot : i32, t : i32) -> i32 { return slot * uniforms.tokens + t; }
  fn batchOf(inst : i32) -> i32 { return inst / (uniforms.groups * uniforms.heads); }
  fn groupOf(inst : i32) -> i32 { return (inst / uniforms.heads) % uniforms.groups; }
  fn headOf(inst : i32) -> i32 { return inst % uniforms.heads; }

  fn groupBody(group : i32, lane : i32) {
    let slot = lane / uniforms.lanes;
    // Uniform trip counts keep the barriers inside in uniform control flow.
    for (var chunk = 0; chunk < uniforms.chunks; chunk += 1) {
      let inst = (chunk * uniforms.launched + group) * uniforms.slots + slot;
      instance(inst, slot < uniforms.slots && inst < uniforms.instances, slot, lane % uniforms.lanes, lane);
      workgroupBarrier();
    }
  }`

/** Scores of instance (b, g, h): queries normalised per lane, the keys' inverse RMS from `rk`. */
const SCORES = `
  // Head h of a row's q, RMS-normalised with its gain, the score scale folded in.
  fn normalisedQuery(row : i32, h : i32, r : f32) -> array<f32, HEAD_DIM> {
    var qn : array<f32, HEAD_DIM>;
    for (var d = 0; d < HEAD_DIM; d += 1) {
      let c = h * HEAD_DIM + d;
      qn[d] = QKV[row * rowWidth() + c] * r * GQ[c] * SCALE;
    }
    return qn;
  }

  fn score(qn : array<f32, HEAD_DIM>, b : i32, g : i32, h : i32, u : i32, slot : i32) -> f32 {
    let k = rowOf(b, u, g) * rowWidth() + groupSize() + h * HEAD_DIM;
    var dot = 0.0;
    for (var d = 0; d < HEAD_DIM; d += 1) { dot += qn[d] * QKV[k + d] * GK[h * HEAD_DIM + d]; }
    return dot * rk[at(slot, u)];
  }

  fn maxScore(qn : array<f32, HEAD_DIM>, b : i32, g : i32, h : i32, slot : i32) -> f32 {
    var m = score(qn, b, g, h, 0, slot);
    for (var u = 1; u < uniforms.tokens; u += 1) { m = max(m, score(qn, b, g, h, u, slot)); }
    return m;
  }`

const perToken = (s: GroupAttentionShape): string => `array<f32, ${tokenCapacity(s.tokens)}>`

// Forward: lane t computes query t's output with a two-pass softmax (max, then exp-sum and
// values).
registerWebgpuKernel('UpsGroupAttention', ({inputs, backend, attrs}) => {
  const s = shapeOf(attrs)
  return runGroupProgram(backend, {
    key: `group_attention_${s.headDim}_${tokenCapacity(s.tokens)}`,
    inputs: [inputs.qkv, inputs.gq, inputs.gk],
    names: ['QKV', 'GQ', 'GK'],
    outputShape: [s.batch * s.tokens * s.groups, s.heads * s.headDim],
    ...instanceDispatch(s),
    code: `${header(s.headDim)}
      var<workgroup> rk : ${perToken(s)};
      ${instanceFrame}
      ${SCORES}

      fn attendQuery(b : i32, g : i32, h : i32, t : i32, slot : i32) {
        let row = rowOf(b, t, g);
        let qn = normalisedQuery(row, h, inverseRms(row, 0));
        let m = maxScore(qn, b, g, h, slot);
        var sum = 0.0;
        var acc : array<f32, HEAD_DIM>;
        for (var u = 0; u < uniforms.tokens; u += 1) {
          let p = exp(score(qn, b, g, h, u, slot) - m);
          sum += p;
          let v = rowOf(b, u, g) * rowWidth() + 2 * groupSize() + h * HEAD_DIM;
          for (var d = 0; d < HEAD_DIM; d += 1) { acc[d] += p * QKV[v + d]; }
        }
        for (var d = 0; d < HEAD_DIM; d += 1) { result[row * groupSize() + h * HEAD_DIM + d] = acc[d] / sum; }
      }

      fn instance(inst : i32, live : bool, slot : i32, l : i32, lane : i32) {
        let b = batchOf(inst);
        let g = groupOf(inst);
        let h = headOf(inst);
        if (live) {
          for (var t = l; t < uniforms.tokens; t += uniforms.lanes) { rk[at(slot, t)] = inverseRms(rowOf(b, t, g), 1); }
        }
        workgroupBarrier();
        if (live) {
          for (var t = l; t < uniforms.tokens; t += uniforms.lanes) { attendQuery(b, g, h, t, slot); }
        }
      }`,
  })
})

// Attention backward. Phases, barriers between: the tokens' inverse RMS of q and k; each query's
// log-sum-exp and delta = dO.O; lane t takes query t (d(qn)) and key t (d(kn), dv); the slot sums
// its lanes' gain-gradient terms. Output (flat): [rows, 3*gs] of d(qn) | d(kn) | dv (d(qn) and
// d(kn) are the RMSNorms' output gradients), then [B*G, gs] partial dgq and [B*G, gs] partial dgk.
registerWebgpuKernel('UpsGroupAttentionGrad', ({inputs, backend, attrs}) => {
  const s = shapeOf(attrs)
  const gs = s.heads * s.headDim
  return runGroupProgram(backend, {
    key: `group_attention_grad_${s.headDim}_${tokenCapacity(s.tokens)}`,
    inputs: [inputs.qkv, inputs.gq, inputs.gk, inputs.out, inputs.dy],
    names: ['QKV', 'GQ', 'GK', 'OUT', 'DY'],
    outputShape: [s.batch * s.tokens * s.groups * 3 * gs + 2 * s.batch * s.groups * gs],
    ...instanceDispatch(s),
    code: `${header(s.headDim)}
      var<workgroup> rq : ${perToken(s)};
      var<workgroup> rk : ${perToken(s)};
      var<workgroup> lse : ${perToken(s)};
      var<workgroup> delta : ${perToken(s)};
      var<workgroup> gains : array<f32, ${WORKGROUP * 2 * s.headDim}>;
      ${instanceFrame}
      ${SCORES}

      fn queryStats(b : i32, g : i32, h : i32, t : i32, slot : i32) {
        let row = rowOf(b, t, g);
        let qn = normalisedQuery(row, h, rq[at(slot, t)]);
        let m = maxScore(qn, b, g, h, slot);
        var sum = 0.0;
        for (var u = 0; u < uniforms.tokens; u += 1) { sum += exp(score(qn, b, g, h, u, slot) - m); }
        lse[at(slot, t)] = m + log(sum);
        let o = row * groupSize() + h * HEAD_DIM;
        var dot = 0.0;
        for (var d = 0; d < HEAD_DIM; d += 1) { dot += DY[o + d] * OUT[o + d]; }
        delta[at(slot, t)] = dot;
      }

      // Writes d(qn) of query t; returns its terms of dgq (d(qn) q r per channel).
      fn queryGrad(b : i32, g : i32, h : i32, t : i32, slot : i32) -> array<f32, HEAD_DIM> {
        let i = at(slot, t);
        let row = rowOf(b, t, g);
        let qn = normalisedQuery(row, h, rq[i]);
        let o = row * groupSize() + h * HEAD_DIM;
        var dqn : array<f32, HEAD_DIM>;
        for (var u = 0; u < uniforms.tokens; u += 1) {
          let p = exp(score(qn, b, g, h, u, slot) - lse[i]);
          let kv = rowOf(b, u, g) * rowWidth() + h * HEAD_DIM;
          var dp = 0.0;
          for (var d = 0; d < HEAD_DIM; d += 1) { dp += DY[o + d] * QKV[kv + 2 * groupSize() + d]; }
          let ds = p * (dp - delta[i]) * rk[at(slot, u)];
          for (var d = 0; d < HEAD_DIM; d += 1) { dqn[d] += ds * QKV[kv + groupSize() + d] * GK[h * HEAD_DIM + d]; }
        }
        var gain : array<f32, HEAD_DIM>;
        for (var d = 0; d < HEAD_DIM; d += 1) {
          let c = row * rowWidth() + h * HEAD_DIM + d;
          result[c] = dqn[d] * SCALE;
          gain[d] = dqn[d] * SCALE * QKV[c] * rq[i];
        }
        return gain;
      }

      // Writes d(kn) and dv of key u; returns its terms of dgk.
      fn keyGrad(b : i32, g : i32, h : i32, u : i32, slot : i32) -> array<f32, HEAD_DIM> {
        let kv = rowOf(b, u, g) * rowWidth() + h * HEAD_DIM;
        let r = rk[at(slot, u)];
        var kn : array<f32, HEAD_DIM>;
        var v : array<f32, HEAD_DIM>;
        for (var d = 0; d < HEAD_DIM; d += 1) {
          kn[d] = QKV[kv + groupSize() + d] * r * GK[h * HEAD_DIM + d];
          v[d] = QKV[kv + 2 * groupSize() + d];
        }
        var dkn : array<f32, HEAD_DIM>;
        var dv : array<f32, HEAD_DIM>;
        for (var t = 0; t < uniforms.tokens; t += 1) {
          let i = at(slot, t);
          let row = rowOf(b, t, g);
          let qn = normalisedQuery(row, h, rq[i]);
          let o = row * groupSize() + h * HEAD_DIM;
          var s = 0.0;
          var dp = 0.0;
          for (var d = 0; d < HEAD_DIM; d += 1) {
            s += qn[d] * kn[d];
            dp += DY[o + d] * v[d];
          }
          let p = exp(s - lse[i]);
          let ds = p * (dp - delta[i]);
          for (var d = 0; d < HEAD_DIM; d += 1) {
            dkn[d] += ds * qn[d];
            dv[d] += p * DY[o + d];
          }
        }
        var gain : array<f32, HEAD_DIM>;
        for (var d = 0; d < HEAD_DIM; d += 1) {
          result[kv + groupSize() + d] = dkn[d];
          result[kv + 2 * groupSize() + d] = dv[d];
          gain[d] = dkn[d] * QKV[kv + groupSize() + d] * r;
        }
        return gain;
      }

      fn instance(inst : i32, live : bool, slot : i32, l : i32, lane : i32) {
        let b = batchOf(inst);
        let g = groupOf(inst);
        let h = headOf(inst);
        if (live) {
          for (var t = l; t < uniforms.tokens; t += uniforms.lanes) {
            rq[at(slot, t)] = inverseRms(rowOf(b, t, g), 0);
            rk[at(slot, t)] = inverseRms(rowOf(b, t, g), 1);
          }
        }
        workgroupBarrier();
        if (live) {
          for (var t = l; t < uniforms.tokens; t += uniforms.lanes) { queryStats(b, g, h, t, slot); }
        }
        workgroupBarrier();
        var gainQ : array<f32, HEAD_DIM>;
        var gainK : array<f32, HEAD_DIM>;
        if (live) {
          for (var t = l; t < uniforms.tokens; t += uniforms.lanes) {
            let q = queryGrad(b, g, h, t, slot);
            let k = keyGrad(b, g, h, t, slot);
            for (var d = 0; d < HEAD_DIM; d += 1) {
              gainQ[d] += q[d];
              gainK[d] += k[d];
            }
          }
        }
        for (var d = 0; d < HEAD_DIM; d += 1) {
          gains[lane * 2 * HEAD_DIM + d] = gainQ[d];
          gains[lane * 2 * HEAD_DIM + HEAD_DIM + d] = gainK[d];
        }
        workgroupBarrier();
        // Lane j of the slot sums channel j of dgq | dgk over the slot's lanes.
        if (live) {
          let pairs = uniforms.instances / uniforms.heads;
          let partials = pairs * uniforms.tokens * rowWidth() + (b * uniforms.groups + g) * groupSize() + h * HEAD_DIM;
          for (var j = l; j < 2 * HEAD_DIM; j += uniforms.lanes) {
            var sum = 0.0;
            for (var m = 0; m < uniforms.lanes; m += 1) { sum += gains[(slot * uniforms.lanes + m) * 2 * HEAD_DIM + j]; }
            result[partials + select(j, pairs * groupSize() + j - HEAD_DIM, j >= HEAD_DIM)] = sum;
          }
        }
      }`,
  })
})

// The RMSNorms' backward (dx = r g dy - x r^3 sum(g dy x) / gs), one thread per (row, part of
// q | k | v); dv is copied.
registerWebgpuKernel('UpsGroupAttentionInputGrad', ({inputs, backend, attrs}) => {
  const s = shapeOf(attrs)
  const rows = s.batch * s.tokens * s.groups
  return runProgram(backend, {
    key: `group_attention_input_grad_${s.headDim}`,
    inputs: [inputs.grad, inputs.qkv, inputs.gq, inputs.gk],
    names: ['GRAD', 'QKV', 'GQ', 'GK'],
    outputShape: [rows, 3 * s.heads * s.headDim],
    threads: rows * 3,
    uniforms: shapeUniforms(s),
    code: `${header(s.headDim)}
      fn gain(part : i32, c : i32) -> f32 {
        return select(GK[c], GQ[c], part == 0);
      }

      fn body(i : i32) {
        let part = i % 3;
        let o = (i / 3) * rowWidth() + part * groupSize();
        if (part == 2) {
          for (var c = 0; c < groupSize(); c += 1) { result[o + c] = GRAD[o + c]; }
          return;
        }
        var dot = 0.0;
        for (var c = 0; c < groupSize(); c += 1) { dot += gain(part, c) * GRAD[o + c] * QKV[o + c]; }
        let r = inverseRms(i / 3, part);
        let k = r * r * r * dot / f32(groupSize());
        for (var c = 0; c < groupSize(); c += 1) { result[o + c] = r * gain(part, c) * GRAD[o + c] - QKV[o + c] * k; }
      }`,
  })
})

/** One gain gradient (part 0: q, 1: k): the sum of the B*G partials the attention backward left. */
function gainGrad(grad: tf.Tensor, s: GroupAttentionShape, part: 0 | 1): tf.Tensor1D {
  const gs = s.heads * s.headDim
  const pairs = s.batch * s.groups
  return columnSum(grad, {base: s.batch * s.tokens * s.groups * 3 * gs + part * pairs * gs, rows: pairs, stride: gs, count: gs})
}

/**
 * `fusedGroupAttention` on webgpu: qkv [B*T*G, 3*gs] (rows b, t, g; columns q | k | v, each
 * [H, hd]) with RMSNorm gains gq, gk [gs] -> [B*T*G, gs]. One dispatch forward, four backward.
 */
export function webgpuGroupAttention(qkv: tf.Tensor2D, gq: tf.Tensor1D, gk: tf.Tensor1D, shape: GroupAttentionShape): tf.Tensor2D {
  if (!webgpuAttentionFits(shape)) throw new Error(`webgpuGroupAttention: ${shape.tokens} tokens do not fit one workgroup's memory`)
  const attrs = {shape}
  const f = tf.customGrad(((x: tf.Tensor2D, a: tf.Tensor1D, c: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const out = runKernel<tf.Tensor2D>('UpsGroupAttention', {qkv: x, gq: a, gk: c}, attrs)
    save([x, a, c, out])
    return {
      value: out,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [sx, sa, sc, so] = saved
        const grad = runKernel('UpsGroupAttentionGrad', {qkv: sx, gq: sa, gk: sc, out: so, dy}, attrs)
        const dqkv = runKernel('UpsGroupAttentionInputGrad', {grad, qkv: sx, gq: sa, gk: sc}, attrs)
        const dgq = gainGrad(grad, shape, 0)
        const dgk = gainGrad(grad, shape, 1)
        grad.dispose()
        return [dqkv, dgq, dgk]
      },
    }
  }) as unknown as CG)
  return f(qkv, gq, gk) as tf.Tensor2D
}
