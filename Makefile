.PHONY: run test setup lint stop bench
run:    ## set up and run the local pipeline (Kafka, Dagster UI, stream, simulator); Ctrl-C stops it
	scripts/run.sh
test:   ## set up and run lint, definitions validation and every test layer
	scripts/test.sh
setup:  ## only set up (venv, jars, binaries)
	scripts/setup.sh --test
lint:
	.venv/bin/ruff check iot_pipeline iot_pipeline_tests benchmarks deploy
stop:   ## stop whatever `make run` left running
	.venv/bin/iot-pipeline local down
