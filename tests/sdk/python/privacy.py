"""A customer's legacy app using Adobe's aepp, unmodified: OAuth Server-to-Server credentials
(aepp fetches its own token from https://ims-na1.adobelogin.com/ims/token/v3), then Privacy
Service: create a job, read its status. The credentials are dummies: the app reaches Adobe only
through HTTPS_PROXY (ims-proxy's forward listener), which answers IMS and swaps in the real
credential on the way to the API.

env: DUMMY_ORG_ID, DUMMY_CLIENT_ID, DUMMY_SECRET (all required), DUMMY_SCOPES (default
     "openid,AdobeID,read_organizations"), COMPANY_ORG_ID (the org in the job body's
     companyContexts; default DUMMY_ORG_ID), HTTPS_PROXY; REQUESTS_CA_BUNDLE (aepp passes
     verify=False everywhere, so it does not check certificates at all: see README.md).
stdout: one JSON line; exit 1 with the error on stderr on any failure.
"""

import contextlib
import json
import os
import sys


def env(name, default=None):
    v = os.environ.get(name, default)
    if not v:
        raise RuntimeError(f"{name} is not set")
    return v


def main():
    # aepp prints some failures ("Issue retrieving token", ...) on stdout: keep stdout for the
    # one result line.
    with contextlib.redirect_stdout(sys.stderr):
        result = run()
    print(json.dumps(result))


def run():
    import aepp
    from aepp import privacyservice

    org_id = env("DUMMY_ORG_ID")
    aepp.configure(
        org_id=org_id,
        client_id=env("DUMMY_CLIENT_ID"),
        secret=env("DUMMY_SECRET"),
        scopes=env("DUMMY_SCOPES", "openid,AdobeID,read_organizations"),
        environment="prod",
    )
    # The constructor logs in: POST https://ims-na1.adobelogin.com/ims/token/v3.
    privacy = privacyservice.Privacy()
    token = privacy.connector.token
    if not token:
        raise RuntimeError("aepp got no access token from IMS")

    job = {
        # The job body names the org too; the proxy never rewrites bodies, so a test that
        # wants only real values upstream passes the real org here (it is no secret).
        "companyContexts": [{"namespace": "imsOrgID", "value": env("COMPANY_ORG_ID", org_id)}],
        "users": [
            {
                "key": "sdk-harness-user",
                "action": ["access"],
                "userIDs": [
                    {"namespace": "email", "value": "sdk.harness@example.com", "type": "standard"}
                ],
            }
        ],
        "include": ["Analytics"],
        "expandIds": False,
        "priority": "normal",
        "regulation": "gdpr",
    }
    # aepp returns the parsed JSON of any answer, errors included: check the shape ourselves.
    created = privacy.postJob(job)
    jobs = created.get("jobs") if isinstance(created, dict) else None
    if not jobs or not jobs[0].get("jobId"):
        raise RuntimeError(f"postJob: {json.dumps(created)}")
    job_id = jobs[0]["jobId"]

    status = privacy.getJob(job_id)
    if not isinstance(status, dict) or status.get("jobId") != job_id:
        raise RuntimeError(f"getJob: {json.dumps(status)}")

    listed = privacy.getJobs(regulation="gdpr")
    if not isinstance(listed, dict) or "jobs" not in listed:
        raise RuntimeError(f"getJobs: {json.dumps(listed)}")

    return {
        "ok": True,
        "aepp": aepp.__version__,
        "tokenParts": len(token.split(".")),
        "created": {"jobId": job_id, "totalRecords": created.get("totalRecords")},
        "status": {
            "jobId": status["jobId"],
            "status": status.get("status"),
            "regulation": status.get("regulation"),
        },
        "listed": len(listed["jobs"]),
    }


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is the test's failure
        print(f"privacy.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
