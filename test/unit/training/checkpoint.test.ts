import assert from 'node:assert/strict'
import {mkdtemp, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {
  type CheckpointPayload,
  latestValidCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
  saveNumberedCheckpoint,
} from '../../../src/training/checkpoint.js'
import {Rng} from '../../../src/training/rng.js'
import {UserError} from '../../../src/util/errors.js'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ups-ckpt-'))
})
after(async () => {
  await rm(dir, {recursive: true, force: true})
})

function payload(epoch: number, step: number): CheckpointPayload {
  const rng = new Rng(epoch)
  // Awkward values on purpose: -0, NaN, Infinity, denormals must survive bit-exactly.
  const special = new Float32Array([-0, Number.NaN, Number.POSITIVE_INFINITY, 1.4e-45, 3.4028235e38, epoch])
  return {
    tensors: [
      {name: 'operator/input/w', shape: [3, 5], dtype: 'float32', data: rng.fillNormal(15)},
      {name: 'special', shape: [6], dtype: 'float32', data: special},
      {name: 'counts', shape: [2, 2], dtype: 'int32', data: new Int32Array([1, -2, 2147483647, -2147483648])},
      {name: 'empty', shape: [0], dtype: 'float32', data: new Float32Array(0)},
    ],
    epoch,
    step,
    rng: rng.getState(),
    optimizer: {type: 'adam', step, lr: 0.001},
    scheduler: {type: 'steplr', epoch},
    metadata: {stage: 'operator', note: 'ünïcode ok'},
  }
}

const bits = (a: Float32Array | Int32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length))

describe('checkpoint format', () => {
  it('round-trips every tensor bit-exactly with its state', async () => {
    const p = payload(3, 120)
    const path = join(dir, 'rt', 'operator.ckpt')
    await saveCheckpoint(path, p)
    assert.deepEqual((await readdir(path)).sort(), ['manifest.json', 'weights.bin'])
    const loaded = await loadCheckpoint(path)
    assert.equal(loaded.tensors.length, p.tensors.length)
    loaded.tensors.forEach((t, i) => {
      assert.equal(t.name, p.tensors[i].name)
      assert.deepEqual(t.shape, p.tensors[i].shape)
      assert.equal(t.dtype, p.tensors[i].dtype)
      assert.equal(t.data.constructor, p.tensors[i].data.constructor)
      assert.deepEqual(bits(t.data), bits(p.tensors[i].data))
    })
    assert.deepEqual(loaded.rng, p.rng)
    assert.deepEqual(loaded.optimizer, p.optimizer)
    assert.deepEqual(loaded.scheduler, p.scheduler)
    assert.deepEqual(loaded.metadata, p.metadata)
    assert.equal(loaded.epoch, 3)
    assert.equal(loaded.step, 120)
    // Replacing keeps one folder and no leftovers.
    await saveCheckpoint(path, payload(4, 160))
    assert.equal((await loadCheckpoint(path)).step, 160)
    assert.deepEqual(await readdir(join(dir, 'rt')), ['operator.ckpt'])
  })

  it('detects a corrupted weights.bin or manifest with CHECKPOINT_CORRUPT', async () => {
    const path = join(dir, 'bad', 'operator.ckpt')
    await saveCheckpoint(path, payload(1, 10))
    const w = await readFile(join(path, 'weights.bin'))
    w[7] ^= 0x01
    await writeFile(join(path, 'weights.bin'), w)
    await assert.rejects(loadCheckpoint(path), (e: unknown) => e instanceof UserError && e.code === 'CHECKPOINT_CORRUPT' && /weights\.bin does not match/.test(e.message))

    await saveCheckpoint(path, payload(1, 10))
    const m = JSON.parse(await readFile(join(path, 'manifest.json'), 'utf8'))
    m.step = 11
    await writeFile(join(path, 'manifest.json'), JSON.stringify(m))
    await assert.rejects(loadCheckpoint(path), (e: unknown) => e instanceof UserError && e.code === 'CHECKPOINT_CORRUPT' && /manifest/.test(e.message))

    await rm(join(path, 'weights.bin'))
    await assert.rejects(loadCheckpoint(path), (e: unknown) => e instanceof UserError && e.code === 'CHECKPOINT_CORRUPT')
  })

  it('latestValidCheckpoint skips a corrupt newest checkpoint, reports it and picks the previous', async () => {
    const d = join(dir, 'latest')
    for (const epoch of [1, 2, 3, 4]) await saveNumberedCheckpoint(d, 'operator', payload(epoch, epoch * 10), 3)
    await saveNumberedCheckpoint(d, 'diff_residual', payload(9, 90), 3)
    // keep-last-3 rotation
    assert.deepEqual((await readdir(d)).filter((n) => n.startsWith('operator')).sort(), [
      'operator_epoch0002.ckpt',
      'operator_epoch0003.ckpt',
      'operator_epoch0004.ckpt',
    ])
    await saveCheckpoint(join(d, 'operator.ckpt'), payload(5, 50))
    let r = await latestValidCheckpoint(d, 'operator')
    assert.equal(r.checkpoint?.step, 50)
    assert.deepEqual(r.skipped, [])

    // Corrupt the newest (last) and truncate the next: the epoch-3 one must be chosen.
    const w = await readFile(join(d, 'operator.ckpt', 'weights.bin'))
    w[0] ^= 0xff
    await writeFile(join(d, 'operator.ckpt', 'weights.bin'), w)
    await writeFile(join(d, 'operator_epoch0004.ckpt', 'weights.bin'), w.subarray(0, 8))
    r = await latestValidCheckpoint(d, 'operator')
    assert.equal(r.checkpoint?.step, 30)
    assert.equal(r.checkpoint?.epoch, 3)
    assert.deepEqual(r.skipped.map((s) => s.path.split('/').pop()).sort(), ['operator.ckpt', 'operator_epoch0004.ckpt'])
    assert.ok(r.skipped.every((s) => /corrupt/.test(s.reason)))
    // Other stages are untouched by the scan.
    assert.equal((await latestValidCheckpoint(d, 'diff_residual')).checkpoint?.step, 90)
    assert.equal((await latestValidCheckpoint(join(dir, 'nothing-here'), 'operator')).checkpoint, null)
  })

  it('a crash between the swap renames still leaves a loadable checkpoint', async () => {
    const d = join(dir, 'swap')
    const path = join(d, 'operator.ckpt')
    await saveCheckpoint(path, payload(1, 10))
    // Simulate: old folder moved aside, new one complete in its temp name, process killed.
    await rename(path, join(d, '.operator.ckpt.abc123.old'))
    await saveCheckpoint(join(d, 'staging.ckpt'), payload(2, 20))
    await rename(join(d, 'staging.ckpt'), join(d, '.operator.ckpt.def456.tmp'))
    // And a temp folder from a write that died before its manifest.
    await saveCheckpoint(join(d, 'partial.ckpt'), payload(3, 30))
    await rm(join(d, 'partial.ckpt', 'manifest.json'))
    await rename(join(d, 'partial.ckpt'), join(d, '.operator.ckpt.0a0a0a.tmp'))
    const r = await latestValidCheckpoint(d, 'operator')
    assert.equal(r.checkpoint?.step, 20)
    assert.deepEqual(r.skipped, [])
  })
})
