"""Local, Docker-free stand-ins for the production services (Kafka, MinIO, a Spark cluster).

They start real upstream binaries as processes on 127.0.0.1 for the run command and the tests.
"""
