# The shopstream image: the `shopstream` CLI with pyspark, Java 17 and the project's JVM jars.
# Every shopstream process uses this one image: streams, api, batch, generator and the
# one-shot jobs. docker-compose.yml picks the command and the configuration (SHOPSTREAM_*).
#
#   docker build -t shopstream:0.1.0 .        (or: docker compose build)
#
# Everything comes from Debian, PyPI and Maven Central. Nothing else is downloaded.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- JVM jars: resolved by Maven, exactly as `make jars` does on a developer machine --------
FROM ${PYTHON_IMAGE} AS jars

# openjdk's post-install script needs the man1 folder, which slim images leave out.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless maven make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY Makefile ./
COPY jvm/ jvm/
# install-s3: hadoop-aws and the AWS SDK bundle, which the compose deployment's s3a:// lake
# needs (shopstream/lake/spark.py refuses an s3a lake without them).
RUN make jars install-s3

# --- runtime --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# The image decides where its own files live. Where the services run comes from compose.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SHOPSTREAM_STATE_DIR=/var/lib/shopstream \
    SHOPSTREAM_JVM_LIB_DIR=/opt/shopstream/jvm/lib

# Java for the Spark driver. Maven stays in the build stage.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/shopstream shopstream \
 && mkdir -p /var/lib/shopstream \
 && chown shopstream /var/lib/shopstream

WORKDIR /opt/shopstream

# Dependencies first, read from pyproject.toml, so a source change does not reinstall pyspark.
# The s3 extra (boto3) lets `clickstream replay` read s3:// sources.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['s3']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY --from=jars /src/jvm/lib/ jvm/lib/
COPY . .

# In place (editable), not into site-packages: the code finds connectors/*.json and dbt/
# through PROJECT_ROOT, the folder that holds the package.
RUN pip install --no-deps -e . \
 && shopstream --help >/dev/null

USER shopstream
ENTRYPOINT ["shopstream"]
CMD ["--help"]
