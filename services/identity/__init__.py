"""Sign-in with the company's identity provider, bearer JWTs on the API and workload identities for pipelines."""
