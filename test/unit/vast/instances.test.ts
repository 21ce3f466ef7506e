import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {UserError} from '../../../src/util/errors.js'
import {type Instance, type Provider, confirmDestroy, listInstances, renderInstance, renderInstances} from '../../../src/vast/index.js'

const inst = (over: Partial<Instance>): Instance => ({
  id: 1, status: 'running', intendedStatus: 'running', curState: 'running', statusMsg: null, label: null, gpuName: 'RTX 4090',
  numGpus: 1, gpuUtil: 91, gpuTemp: 60, memUsage: 3, diskUsage: 5, diskGb: 64, dphTotal: 0.35, startDate: 0, sshHost: 'ssh2.vast.ai',
  sshPort: 20001, publicIp: null, image: 'img', machineId: 1, location: 'Sweden, SE', uptimeMins: 90, envKeys: ['WANDB_API_KEY'], ...over,
})

describe('instances', () => {
  test('confirmDestroy: --yes passes, a TTY asks, a non-TTY refuses with exit 2', async () => {
    const asked: string[] = []
    await confirmDestroy(5, {yes: true, isTTY: false, ask: async () => false})
    await confirmDestroy(5, {yes: false, isTTY: true, ask: async (q) => (asked.push(q), true)})
    assert.match(asked[0], /Destroy instance 5\?/)
    await assert.rejects(confirmDestroy(5, {yes: false, isTTY: true, ask: async () => false}), (e: UserError) => e.code === 'VAST_NOT_CONFIRMED')
    await assert.rejects(confirmDestroy(5, {yes: false, isTTY: false, ask: async () => true}), (e: UserError) => e.code === 'VAST_CONFIRM_REQUIRED' && e.exitCode === 2 && /--yes/.test(e.hint ?? ''))
  })

  test('listInstances filters by status; renderers show the key facts and hide env values', async () => {
    const provider = {list: async () => [inst({id: 1}), inst({id: 2, status: 'stopped'}), inst({id: 3, status: null})]} as unknown as Provider
    assert.deepEqual((await listInstances(provider, {status: 'stopped'})).instances.map((i) => i.id), [2])
    assert.equal((await listInstances(provider)).instances.length, 3)
    const table = renderInstances({status: null, instances: [inst({id: 7, label: 'x'})]})
    assert.match(table, /^7\s+running\s+x\s+1x RTX 4090\s+0\.3500\s+91%\s+1\.5 h\s+img$/m)
    assert.equal(renderInstances({status: 'running', instances: []}), 'No running instances.')
    assert.match(renderInstance(inst({})), /env\s+WANDB_API_KEY \(values hidden\)/)
  })
})
