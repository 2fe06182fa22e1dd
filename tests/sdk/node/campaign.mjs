// A customer's legacy app using Adobe's Campaign Standard SDK, unmodified, as its README says:
// init(tenant, apiKey, accessToken), list profiles, create one, get it back by its PKey.
// The credentials are dummies: the app reaches Adobe only through HTTPS_PROXY (ims-proxy's
// forward listener), which swaps in the real ones. NODE_EXTRA_CA_CERTS trusts the proxy's CA.
//
// env: CAMPAIGN_TENANT, DUMMY_API_KEY, DUMMY_TOKEN (all required), HTTPS_PROXY,
//      NODE_EXTRA_CA_CERTS; optional PROFILE_EMAIL (default sdk.<time>@example.com).
// stdout: one JSON line; exit 1 with the error on stderr on any failure.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const campaign = require('@adobe/aio-lib-campaign-standard')

function env (name) {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set`)
  return v
}

function check (cond, what, got) {
  if (!cond) throw new Error(`${what}: got ${JSON.stringify(got)}`)
}

async function main () {
  const tenant = env('CAMPAIGN_TENANT')
  const client = await campaign.init(tenant, env('DUMMY_API_KEY'), env('DUMMY_TOKEN'))

  // swagger-client responses: { ok, status, url, headers, body (parsed JSON), text }.
  const list = await client.getAllProfiles({ lineCount: 10 })
  check(list.status === 200 && Array.isArray(list.body.content), 'list profiles', list.body)

  const email = process.env.PROFILE_EMAIL || `sdk.${Date.now()}@example.com`
  const created = await client.createProfile({ firstName: 'Sdk', lastName: 'Harness', email })
  check(created.status >= 200 && created.status < 300, 'create profile status', created.status)
  const pkey = created.body.PKey
  check(typeof pkey === 'string' && pkey.startsWith('@'), 'created PKey', created.body)

  const byKey = await client.getProfile(pkey)
  check(byKey.status === 200 && byKey.body.email === email, 'get profile by PKey', byKey.body)

  // Not getDataFromRelativeUrl(href): swagger-client escapes its slashes (%2F), see README.md.
  const href = created.body.href

  process.stdout.write(JSON.stringify({
    ok: true,
    listed: list.body.content.length,
    listedEmails: list.body.content.map(p => p.email),
    created: { status: created.status, PKey: pkey, href, email },
    byPKey: { status: byKey.status, url: byKey.url, PKey: byKey.body.PKey, email: byKey.body.email }
  }) + '\n')
}

main().catch(err => {
  // The SDK's errors carry "status - statusText (body)" in their message.
  process.stderr.write(`campaign.mjs: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
