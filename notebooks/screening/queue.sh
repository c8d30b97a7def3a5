#!/bin/bash
# run lines of queue.txt one at a time; each line: recipe seed [extra args]
cd /work/scratch
while true; do
  line=$(head -n1 queue.txt 2>/dev/null)
  if [ -z "$line" ]; then sleep 5; continue; fi
  sed -i '1d' queue.txt
  echo "$(date +%T) start $line" >> queue.log
  PYTHONPATH=/work/scratch/snap:/work/scratch /work/main/.venv/bin/python exp.py $line >> queue.log 2>&1
  echo "$(date +%T) done $line rc=$?" >> queue.log
done
