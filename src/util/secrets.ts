/**
 * The secrets ups handles. Their values must never reach logs, run directories, generated
 * scripts or error messages; everything that writes text a user or file keeps passes through here.
 */
export const SECRET_ENV_VARS = ['VAST_API_KEY', 'WANDB_API_KEY'] as const

const MIN_SECRET_LENGTH = 6

/** Replaces every occurrence of a secret's current value with `[REDACTED:<name>]`. */
export function redactSecrets(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text
  for (const name of SECRET_ENV_VARS) {
    const value = env[name]
    if (value && value.length >= MIN_SECRET_LENGTH && out.includes(value)) {
      out = out.split(value).join(`[REDACTED:${name}]`)
    }
  }
  return out
}

/** yes/no for `ups doctor`: whether a secret is set, never its value. */
export function secretPresence(env: NodeJS.ProcessEnv = process.env): Record<string, boolean> {
  return Object.fromEntries(SECRET_ENV_VARS.map((name) => [name, Boolean(env[name])]))
}
