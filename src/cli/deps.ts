/**
 * The real side-effecting dependencies commands hand to modules. Tests pass fakes instead.
 */
import {execa} from 'execa'

import type {DoctorDeps} from '../doctor/index.js'

export function realDoctorDeps(): DoctorDeps {
  return {
    env: process.env,
    nodeVersion: process.version,
    async probeBackends() {
      // backend.ts imports tfjs lazily itself, so this costs nothing until doctor runs.
      const {probeBackends} = await import('../training/backend.js')
      return probeBackends()
    },
    async probeWebgpu() {
      const {probeWebgpu} = await import('../training/webgpu.js')
      return probeWebgpu({env: process.env, allowSoftware: process.env.UPS_WEBGPU_ALLOW_SOFTWARE === '1'})
    },
    async vastaiVersion() {
      const bin = process.env.UPS_VASTAI_BIN || 'vastai'
      try {
        const r = await execa(bin, ['--version'], {timeout: 15_000, reject: false, env: {VAST_API_KEY: ''}})
        if (r.failed && (r as {code?: string}).code === 'ENOENT') return {bin, version: null, error: 'not found on PATH'}
        const version = `${r.stdout}`.trim().split('\n').pop() || null
        return {bin, version, error: version ? undefined : `\`${bin} --version\` printed nothing`}
      } catch (error) {
        return {bin, version: null, error: (error as Error).message}
      }
    },
  }
}
