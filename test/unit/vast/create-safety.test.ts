/**
 * `ups launch` must never rent twice or leave an instance behind: the create is sent once (the
 * fake client retries 429/5xx/hangs by itself, like the real one, unless told --retry 1), a
 * failed create is looked up by the launch's label, a taken offer moves on to the next, and the
 * rollback destroy retries with backoff.
 */
import assert from 'node:assert/strict'
import {mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, test} from 'node:test'

import {costReport} from '../../../src/ops/cost.js'
import {UserError} from '../../../src/util/errors.js'
import {type LaunchOptions, VastCli, VastProvider, launch, readLaunchRecords} from '../../../src/vast/index.js'
import {offer} from '../../fixtures/fake-vast.js'
import {CONFIG, type Harness, harness} from '../ops/helpers.js'

const base: LaunchOptions = {configPath: CONFIG, gpu: 'RTX_4090', autoShutdown: true}
/** The harness's run id and random hex are fixed, so the launch's label is known in advance. */
const LABEL = 'ups-run_20251128_171320_beef-beef'
const NO_SUCH_ASK = 'error 404/3603: no_such_ask Instance type by id 5001001 is not available.'

describe('launch: one create, found by label when its outcome is unknown', () => {
  let h: Harness
  let sleeps: number[]
  beforeEach(() => {
    h = harness()
    sleeps = []
    h.deps.sleep = async (ms) => {
      sleeps.push(ms)
      h.fake.advance(ms / 1000)
    }
  })
  afterEach(() => h.cleanup())

  const creates = () => (h.fake.read().requests ?? []).filter((r) => r.command === 'create instance').length
  const live = () => h.fake.read().instances.filter((i) => !i.destroyed)
  const fault = (f: Record<string, unknown>) => h.fake.update((s) => void (s.faults = [...(s.faults ?? []), f as never]))

  test('a 503 on create after Vast created the instance: one create request, the instance adopted and recorded', async () => {
    fault({command: 'create instance', status: 503, msg: 'Service unavailable', times: 1, applied: true})
    const r = await launch(base, h.deps)
    assert.equal(creates(), 1, 'the client was told --retry 1: one create request')
    assert.equal(live().length, 1, 'one instance, not two')
    assert.equal(r.instanceId, live()[0].id)
    assert.equal(live()[0].label, LABEL)
    const [rec] = (await readLaunchRecords(h.deps.launchesFile)).launches
    assert.equal(rec.instance_id, r.instanceId)
    assert.equal(rec.adopted, true)
    assert.match(rec.create_note ?? '', /create on offer 5001001 failed \(.*HTTP 503.*\); instance \d+ was found by its label and adopted/)
    assert.ok(r.warnings.some((w) => /found by its label/.test(w)))
  })

  test('a 503 on create that did nothing: one request, nothing rented, nothing recorded, a transient error', async () => {
    fault({command: 'create instance', status: 503, msg: 'Service unavailable', times: 1})
    await assert.rejects(launch(base, h.deps), (e: UserError) => {
      assert.equal(e.code, 'VAST_API_ERROR')
      assert.equal(e.exitCode, 3)
      assert.match(e.message, new RegExp(`Nothing was rented: no instance carries the label ${LABEL}`))
      return true
    })
    assert.equal(creates(), 1)
    assert.equal(live().length, 0)
    assert.deepEqual(sleeps, [10_000, 10_000], 'looked for the label three times, 10 s apart')
    assert.equal((await readLaunchRecords(h.deps.launchesFile)).launches.length, 0)
  })

  test('outcome unknown and the label cannot be looked up: LAUNCH_CREATE_UNKNOWN says which label to look for', async () => {
    fault({command: 'create instance', status: 503, msg: 'Service unavailable', times: 1, applied: true})
    fault({command: 'show instances', status: 500, msg: 'Internal server error'})
    await assert.rejects(launch(base, h.deps), (e: UserError) => {
      assert.equal(e.code, 'LAUNCH_CREATE_UNKNOWN')
      assert.equal(e.exitCode, 3)
      assert.match(e.message, /could not check whether Vast created it anyway/)
      assert.match(e.hint ?? '', new RegExp(`labelled ${LABEL}`))
      return true
    })
    assert.equal(creates(), 1)
  })

  test('a create that hangs past ups\'s timeout while Vast created the instance: found by label, recorded, no orphan', async () => {
    h.deps.provider = new VastProvider(new VastCli({env: h.fake.env(), bin: h.fake.bin, sleep: async () => {}}), {createTimeoutMs: 4_000})
    fault({command: 'create instance', timeout: 30, applied: true, times: 1})
    const r = await launch(base, h.deps)
    assert.equal(creates(), 1)
    assert.equal(live().length, 1)
    assert.equal(r.instanceId, live()[0].id)
    const [rec] = (await readLaunchRecords(h.deps.launchesFile)).launches
    assert.equal(rec.instance_id, r.instanceId)
    assert.match(rec.create_note ?? '', /did not answer in time/)
  })

  test('a garbled 200 (HTTP 0 "Expecting value") on create: the instance is found and kept', async () => {
    fault({command: 'create instance', garbled: true, times: 1, applied: true})
    const r = await launch(base, h.deps)
    assert.equal(live().length, 1)
    assert.equal(r.instanceId, live()[0].id)
    assert.match((await readLaunchRecords(h.deps.launchesFile)).launches[0].create_note ?? '', /Expecting value/)
  })

  test('a label given by the user: an older instance carrying it is never taken for this launch', async () => {
    const old = h.fake.addInstance({label: 'burgers'})
    fault({command: 'create instance', status: 502, msg: 'Bad gateway', times: 1, applied: true})
    const r = await launch({...base, label: 'burgers'}, h.deps)
    assert.notEqual(r.instanceId, old)
    assert.equal(live().filter((i) => i.label === 'burgers').length, 2, 'the old one untouched, one new')
  })

  test('two instances with the launch\'s label (a create that went through twice): one kept, the other recorded and destroyed', async () => {
    const twin = h.fake.addInstance({label: LABEL, ageSeconds: 0})
    fault({command: 'create instance', status: 504, msg: 'Gateway timeout', times: 1, applied: true})
    const r = await launch(base, h.deps)
    assert.equal(r.instanceId, twin, 'the first one is kept')
    assert.deepEqual(live().map((i) => i.id), [twin])
    const {launches} = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(launches.length, 2)
    const extra = launches.find((l) => l.instance_id !== twin)!
    assert.equal(extra.status, 'rolled_back')
    assert.equal(extra.destroyed_by, 'launch rollback')
    assert.ok(r.warnings.some((w) => /also carried this launch's label and was destroyed/.test(w)))
  })

  test('404 no_such_ask (the offer was taken): the next offer is rented and recorded', async () => {
    h.fake.update((s) => void s.offers.push(offer({id: 5001004, dph_total: 0.41, machine_id: 10004})))
    fault({command: 'create instance', status: 404, msg: NO_SUCH_ASK, times: 1})
    const r = await launch(base, h.deps)
    assert.equal(r.offer.id, 5001004)
    assert.equal(live().length, 1)
    assert.equal(creates(), 2)
    const [rec] = (await readLaunchRecords(h.deps.launchesFile)).launches
    assert.equal(rec.offer.id, 5001004)
    assert.equal(rec.dph_total, 0.41)
    assert.match(rec.create_note ?? '', /offer 5001001 was taken; created on offer 5001004/)
  })

  test('every offer taken: a clear error naming them, nothing rented', async () => {
    h.fake.update((s) => void s.offers.push(offer({id: 5001004, dph_total: 0.41, machine_id: 10004})))
    fault({command: 'create instance', status: 404, msg: NO_SUCH_ASK})
    await assert.rejects(launch(base, h.deps), (e: UserError) => {
      assert.equal(e.code, 'LAUNCH_OFFERS_TAKEN')
      assert.match(e.message, /Every offer ups tried was taken .*\(5001001, 5001004\); nothing was rented/)
      assert.match(e.hint ?? '', /ups offers/)
      return true
    })
    assert.equal(live().length, 0)
  })

  test('--wait rollback: the destroy fails twice, is retried with backoff, and the launch counts as rolled back', async () => {
    h.fake.update((s) => void (s.createDefaults = {stuck: 'loading'}))
    fault({command: 'destroy instance', status: 500, msg: 'Internal server error', times: 2})
    await assert.rejects(launch({...base, wait: true, waitTimeoutMs: 120_000, waitIntervalMs: 30_000}, h.deps), (e: UserError) => {
      assert.equal(e.code, 'LAUNCH_ROLLED_BACK', e.message)
      return true
    })
    assert.equal(live().length, 0)
    assert.deepEqual(sleeps.slice(-2), [5_000, 10_000], 'backoff between the destroy tries')
    const {launches} = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(launches[0].status, 'rolled_back')
    const cost = await costReport({period: 'week', runsRoot: join(h.dir, 'runs'), launchRecords: h.deps.launchesFile}, {provider: h.provider, now: h.deps.now})
    assert.equal(cost.totals.rolledBack, 1)
    assert.equal(cost.launches[0].outcome, 'rolled_back')
    assert.equal(cost.launches[0].endBasis, 'record')
    assert.ok(cost.launches[0].hours! > 0 && cost.launches[0].hours! < 0.1, `a short billed time, got ${cost.launches[0].hours}`)
  })

  test('a launch that cannot be recorded gives the instance back', async () => {
    mkdirSync(h.deps.launchesFile, {recursive: true})
    await assert.rejects(launch(base, h.deps), (e: UserError) => {
      assert.equal(e.code, 'LAUNCH_RECORD_FAILED')
      assert.match(e.message, /could not be recorded .*it was destroyed/)
      return true
    })
    assert.equal(live().length, 0)
  })
})
