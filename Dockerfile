# outrider sidecar image. Multi-stage: wheels are built in the first stage (with a C compiler: mypyc compiles
# the request path, setup.py), the runtime stage holds only the installed application and runs as a non-root
# user. (Not buildable on the project's CI machines, which have no Docker engine; kept deliberately simple.)
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY proxy proxy
COPY experiments experiments
COPY shadow shadow
COPY analysis analysis
COPY plumbing plumbing
COPY modelserver modelserver
COPY oipgrpc oipgrpc
COPY loadtests loadtests
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /var/lib/outrider --create-home outrider
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/outrider
EXPOSE 8080 8081
# Experiment files are mounted at /etc/outrider; outcomes go to the working directory's volume.
ENTRYPOINT ["outrider", "run", "--listen", "0.0.0.0:8080", "--data-dir", "/var/lib/outrider/data"]
CMD ["-c", "/etc/outrider/experiment.yaml"]
