# prefork as a container entrypoint (PID 1): it reaps orphans and drains on TERM.
# docker build -t myapp . && docker run -p 8000:8000 myapp
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY prefork ./prefork
RUN pip install --no-cache-dir .
COPY examples ./examples
# Your application: COPY it here and name it below (MODULE:APP).
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["prefork", "--bind", "0.0.0.0:8000", "--graceful-timeout", "25"]
CMD ["examples.hello:app"]
