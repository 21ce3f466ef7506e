import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'

import {UserError} from '../../../src/util/errors.js'
import {VastCli, VastProvider, followLogs, newLogLines, waitForLogLine, waitForStatus} from '../../../src/vast/index.js'
import {type FakeVast, makeFakeVast} from '../../fixtures/fake-vast.js'

describe('lifecycle waits against the fake (its clock driven by the injected sleep)', () => {
  let fake: FakeVast
  let provider: VastProvider
  let clockMs = 0
  const sleep = async (ms: number) => {
    clockMs += ms
    fake.advance(ms / 1000)
  }
  const now = () => clockMs
  before(() => {
    fake = makeFakeVast({lifecycle: {created: 10, loading: 30}})
    provider = new VastProvider(new VastCli({env: fake.env(), bin: fake.bin, sleep: async () => {}}))
  })
  after(() => fake.cleanup())

  test('waitForStatus sees created -> loading -> running', async () => {
    const {id} = await provider.create({offerId: 5001001, image: 'img', diskGb: 20})
    const seen: string[] = []
    const inst = await waitForStatus(provider, id, 'running', {timeoutMs: 600_000, intervalMs: 10_000, sleep, now, onPoll: (i) => seen.push(String(i.status))})
    assert.equal(inst.status, 'running')
    assert.deepEqual([...new Set(seen)], ['created', 'loading', 'running'])
  })

  test('an instance that never runs times out with VAST_WAIT_TIMEOUT (exit 1) and its last status', async () => {
    fake.update((s) => void (s.createDefaults = {stuck: 'loading'}))
    const {id} = await provider.create({offerId: 5001001, image: 'img', diskGb: 20})
    fake.update((s) => void delete s.createDefaults)
    await assert.rejects(waitForStatus(provider, id, 'running', {timeoutMs: 120_000, intervalMs: 20_000, sleep, now}), (e: UserError) => {
      assert.equal(e.code, 'VAST_WAIT_TIMEOUT')
      assert.equal(e.exitCode, 1)
      assert.equal(e.details?.lastStatus, 'loading')
      return true
    })
  })

  test('an instance that vanishes while waited on is VAST_INSTANCE_GONE', async () => {
    const {id} = await provider.create({offerId: 5001001, image: 'img', diskGb: 20})
    fake.update((s) => void (s.instances.find((i) => i.id === id)!.vanishAt = s.now + 15))
    await assert.rejects(waitForStatus(provider, id, 'running', {timeoutMs: 600_000, intervalMs: 10_000, sleep, now}), (e: UserError) => e.code === 'VAST_INSTANCE_GONE')
  })

  test('waitForLogLine finds "Training started" once the log shows it', async () => {
    const id = fake.addInstance()
    fake.writeLog(id, 'npm ci\n')
    let polls = 0
    const line = await waitForLogLine(provider, id, /Training started/, {
      timeoutMs: 600_000, intervalMs: 5_000, now,
      sleep: async (ms) => {
        await sleep(ms)
        if (++polls === 2) fake.writeLog(id, 'npm ci\n[ups] Training started: run_x\n')
      },
    })
    assert.equal(line, '[ups] Training started: run_x')
    assert.equal(polls, 2)
  })

  test('followLogs prints only new lines and ends when the instance stops', async () => {
    const id = fake.addInstance()
    fake.writeLog(id, 'a\nb\n')
    const printed: string[][] = []
    let n = 0
    const res = await followLogs(provider, id, {
      onLines: (l) => printed.push(l),
      sleep: async () => {
        n++
        if (n === 1) fake.writeLog(id, 'a\nb\nc\nd\n')
        if (n === 2) {
          fake.writeLog(id, 'a\nb\nc\nd\ne\n')
          await provider.stop(id)
        }
      },
    })
    assert.deepEqual(printed, [['a', 'b'], ['c', 'd'], ['e']])
    assert.equal(res.polls, 3)
  })

  test('newLogLines handles a sliding tail window', () => {
    assert.deepEqual(newLogLines(['1', '2', '3'], ['2', '3', '4', '5']), ['4', '5'])
    assert.deepEqual(newLogLines([], ['1']), ['1'])
    assert.deepEqual(newLogLines(['x'], ['y', 'z']), ['y', 'z'])
    assert.deepEqual(newLogLines(['1', '2'], ['1', '2']), [])
  })
})
