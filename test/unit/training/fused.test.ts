import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {setFusedKernels, useFusedAttention, useFusedKernels} from '../../../src/training/fused.js'
import {LatentOperator} from '../../../src/training/models/operator.js'
import {Optimizer} from '../../../src/training/optim.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {lossAndGrads} from '../../../src/training/step.js'
import {BACKENDS, randn, useBackend} from './helpers.js'

const relDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2
    den += a[i] ** 2
  }
  return Math.sqrt(num / (den + 1e-30))
}

for (const backend of BACKENDS) {
  describe(`fused kernels [${backend}]`, () => {
    it('fused optimizer by default on this backend, JS attention only when forced on', async () => {
      await useBackend(backend)
      assert.equal(useFusedKernels(), true)
      assert.equal(useFusedAttention(), false)
      const prev = setFusedKernels('off')
      assert.equal(useFusedKernels(), false)
      setFusedKernels('on')
      assert.equal(useFusedAttention(), true)
      setFusedKernels(prev)
    })

    // Head widths 2 (the fast path) and 3 (the generic loops); odd token count exercises padding.
    for (const [groupSize, numHeads, tokens] of [[4, 2, 6], [6, 2, 5]]) {
      it(`fused attention matches the tfjs-op formulation in value and gradient (head dim ${groupSize / numHeads})`, async () => {
        await useBackend(backend)
        const store = new ParamStore(new Rng(3))
        const op = new LatentOperator(store, {inputDim: 4, hiddenDim: 12, depths: [1, 1], groupSize, numHeads, mlpRatio: 2, dropout: 0, tokens, timeEmbedDim: 8})
        const rng = new Rng(4)
        // Non-trivial RMSNorm gains so their gradients are exercised.
        for (const name of store.names().filter((n) => n.includes('_norm/g'))) store.get(name).assign(randn(rng, store.get(name).shape, 0.5).add(1))
        const z0 = randn(rng, [2, tokens, 4]) as tf.Tensor3D
        const z1 = randn(rng, [2, tokens, 4]) as tf.Tensor3D
        const run = (mode: 'on' | 'off'): {loss: number; grads: Map<string, Float32Array>} => {
          const prev = setFusedKernels(mode)
          try {
            const {loss, grads} = lossAndGrads(store, () => tf.mean(tf.square(tf.sub(op.forward(z0, [0.1, 0.3]), z1))))
            const out = new Map([...grads].map(([n, g]) => [n, g.dataSync() as Float32Array]))
            const value = loss.dataSync()[0]
            tf.dispose([loss, ...grads.values()])
            return {loss: value, grads: out}
          } finally {
            setFusedKernels(prev)
          }
        }
        const fused = run('on')
        const ops = run('off')
        assert.ok(Math.abs(fused.loss - ops.loss) <= 1e-5 * Math.abs(ops.loss), `loss ${fused.loss} vs ${ops.loss}`)
        assert.equal(fused.grads.size, ops.grads.size)
        for (const [name, g] of ops.grads) {
          const d = relDiff(g, fused.grads.get(name)!)
          assert.ok(d < 1e-4, `gradient of ${name} differs by ${d}`)
        }
        // The q/k norm gains do get a gradient through the fused kernel.
        const gq = fused.grads.get('operator/down0/layer0/attn/q_norm/g')!
        assert.ok(Math.max(...Array.from(gq, Math.abs)) > 0)
        tf.dispose([z0, z1])
        op.dispose()
        store.dispose()
      })
    }

    for (const type of ['adamw', 'adam', 'sgd'] as const) {
      it(`fused ${type} update matches the tfjs-op update over several steps`, async () => {
        await useBackend(backend)
        const stores = [new ParamStore(new Rng(5)), new ParamStore(new Rng(5))]
        for (const s of stores) {
          s.add('a/w', [3, 4], {kind: 'normal', std: 1})
          s.add('a/b', [4], {kind: 'normal', std: 1})
        }
        const config = {type, lr: 0.05, weightDecay: 0.1, momentum: 0.9, nesterov: type === 'sgd'}
        const opts = stores.map((s) => new Optimizer(s, config))
        const rng = new Rng(6)
        for (let step = 0; step < 3; step++) {
          const gw = rng.fillNormal(12)
          // 'a/b' has no gradient on odd steps: treated as zero by both paths.
          const gb = step % 2 === 0 ? rng.fillNormal(4) : null
          opts.forEach((o, i) => {
            const prev = setFusedKernels(i === 0 ? 'on' : 'off')
            const grads = new Map<string, tf.Tensor>([['a/w', tf.tensor(gw, [3, 4])]])
            if (gb) grads.set('a/b', tf.tensor(gb, [4]))
            o.apply(grads)
            tf.dispose([...grads.values()])
            setFusedKernels(prev)
          })
        }
        for (const name of ['a/w', 'a/b']) {
          const d = relDiff(stores[1].get(name).dataSync(), stores[0].get(name).dataSync())
          assert.ok(d < 1e-6, `${type} ${name} differs by ${d}`)
        }
        const [s0, s1] = opts.map((o) => o.exportState().arrays)
        s1.forEach((a, i) => assert.ok(relDiff(a.data, s0[i].data) < 1e-6, `slot ${a.name}`))
        for (const o of opts) o.dispose()
        for (const s of stores) s.dispose()
      })
    }
  })
}
