from setuptools import find_namespace_packages, setup

setup(
    name="iss",
    version="0.1.0",
    description="Inter-Server Sync for Foreman/Katello and Pulp: signed incremental yum bundles over RabbitMQ",
    python_requires=">=3.11",
    packages=find_namespace_packages(include=["iss_plugin*", "consumers*", "producers*", "schemas*"]),
    include_package_data=True,
    package_data={
        "schemas": ["*.json", "*/*.json", "*/*/*.json"],
        "iss_plugin": [
            
            "adapters/db/migrations/*.py",
            "adapters/db/migrations/*.mako",
            "adapters/db/migrations/versions/*.py",
            "web/templates/*",
            "web/static/*",
        ],
    },
    data_files=[],
    install_requires=[
        "sqlalchemy>=2.0.30",
        "alembic>=1.13",
        "psycopg[binary]>=3.1",
        "kombu>=5.4",
        "pika>=1.3",
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "jinja2>=3.1",
        "click>=8.1",
        "rich>=13",
        "cryptography>=42",
        "jsonschema>=4.21",
        # the format checks iss relies on (date-time, uri, uri-reference); without these jsonschema skips
        # them silently. Not the format-nongpl extra: its rfc3987-syntax compiles lark grammars (~2 s, ~20 MB).
        "rfc3339-validator>=0.1.4",
        "rfc3986-validator>=0.1.1",
        "createrepo_c>=1.1",
        "rpm-rs>=0.30",
        "pycdlib>=1.14",
        "httpx>=0.27",
        "pydantic-settings>=2.3",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6"],
        "pulp": ["pulp-glue>=0.41"],
    },
    entry_points={
        "console_scripts": ["iss=iss_plugin.cli:main"],
        "iss_plugin.content_types": ["yum=iss_plugin.adapters.content_types.yum:YumContentType"],
        "iss_plugin.commands": ["consumers=consumers.cli:register", "producers=producers.cli:register"],
    },
)
