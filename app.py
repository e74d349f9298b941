"""Entry point: `python app.py` starts the SegEarth-R1 web app (code in app/)."""
from app import main

if __name__ == "__main__":
    main()
