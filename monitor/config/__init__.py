"""Configuration: the service YAML and the sections `check` shares, validated with pydantic."""
