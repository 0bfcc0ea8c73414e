"""Unit tests of how the virustotal connector reads VirusTotal's answers (scripts/test.sh
runs them with the generated bindings on the path)."""

import unittest

import app
from osprey_sdk import Error, ErrorKind


class AnswerTests(unittest.TestCase):
    def test_error_answers_become_the_kinds_a_playbook_acts_on(self):
        cases = [
            (404, ("NotFoundError", 'Domain "x.example" not found'), ErrorKind.NOT_FOUND, "no report on domain x.example"),
            (401, ("WrongCredentialsError", "Wrong API key"), ErrorKind.DENIED, "osprey secret set virustotal api-key"),
            (403, ("ForbiddenError", "no"), ErrorKind.DENIED, "ForbiddenError"),
            (429, ("TooManyRequestsError", "slow"), ErrorKind.RATE_LIMITED, "too many requests a minute"),
            (503, ("TransientError", "later"), ErrorKind.UNAVAILABLE, "503 TransientError: later"),
            (400, ("", ""), ErrorKind.UPSTREAM, "VirusTotal answered HTTP 400"),
        ]
        for status, body, kind, says in cases:
            e = app.answer_error(status, body, "domain x.example")
            self.assertEqual(e.kind, kind, status)
            self.assertIn(says, e.message)
        self.assertEqual(app.answer_error(429, ("TooManyRequestsError", ""), "x").retry_after, 60_000)

    def test_a_spent_daily_quota_waits_until_midnight_utc(self):
        e = app.answer_error(429, ("QuotaExceededError", "Quota exceeded"), "x", now=86400 * 20 + 86400 - 90)
        self.assertEqual((e.kind, e.retryable, e.retry_after), (ErrorKind.RATE_LIMITED, True, 90_000))

    def test_a_summary_counts_engines_and_flags_malicious(self):
        s = app.summary({"reputation": -5, "last_analysis_stats": {"malicious": 1, "harmless": 3, "odd": "x"}})
        self.assertEqual(s, {"reputation": -5, "last_analysis_stats": {"malicious": 1, "harmless": 3}, "last_analysis_date": None, "malicious": True})
        self.assertFalse(app.summary({})["malicious"])

    def test_objects_of_another_type_are_upstream_errors(self):
        self.assertEqual(app.read_attributes({"type": "domain", "attributes": {"a": 1}}, "domain"), {"a": 1})
        with self.assertRaises(Error) as caught:
            app.read_attributes({"type": "file", "attributes": {}}, "domain")
        self.assertEqual(caught.exception.kind, ErrorKind.UPSTREAM)

    def test_domains_are_normalised_and_anything_else_refused(self):
        self.assertEqual(app.normalise_domain(" Malware.Example. "), "malware.example")
        self.assertEqual(app.normalise_domain("bücher.example"), "xn--bcher-kva.example")
        for bad in ["http://x.example/", "a b.example", "-x.example", "x..example"]:
            with self.assertRaises(Error, msg=bad):
                app.normalise_domain(bad)


if __name__ == "__main__":
    unittest.main()
